"""What the relay's metrics cost in throughput, against a real NATS JetStream.

Three contenders move the same outbox (``QXDB_BENCH_EVENTS`` events, default 20,000) to a
fresh stream, interleaved ``QXDB_BENCH_RUNS`` times (default 3):

- **bare**, the best-effort baseline: ``OutboxRelay`` with its metrics recorder replaced
  by one that records nothing (what the relay cost before it measured itself).
- **recorded**, the relay as shipped: counters per event type, three duration
  histograms per batch.
- **served**, the same plus the Prometheus endpoint scraped every second (15 times the
  usual 15 s scrape interval; each scrape also runs ``OutboxStore.stats``).
- **traced**, the relay as shipped on rows that carry an unsampled ``traceparent``, with
  the OpenTelemetry SDK installed (default parent-based sampler): one producer span per
  message, not recorded, and the header sent. Compared with **recorded**.

Prints min/median/max events/s and the paired ratios against bare (target: >= 0.95x),
the time one scrape takes, and the load average.

Run: ``python benchmarks/relay_metrics.py`` (QXDB_BENCH_DATABASE_URL, QXDB_BENCH_NATS_URL;
the database is dropped and created).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QXDB_BENCH_EVENTS", "20000")

import relay as bench

from qxdb.engine import create_engine, make_session_factory
from qxdb.outbox.metrics import EventTotals, RelayMetrics
from qxdb.outbox.metrics_http import MetricsServer
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.outbox.relay import OutboxRelay
from qxdb.outbox.store import OutboxStore
from qxdb.settings import DatabaseSettings

SCRAPE_EVERY = 1.0


class _Nothing:
    def observe(self, seconds: float) -> None:
        pass


class NoMetrics(RelayMetrics):
    """Records nothing: the baseline."""

    def __init__(self) -> None:
        super().__init__()
        self.claim = self.publish = self.mark = _Nothing()  # type: ignore[assignment]
        self._sink = EventTotals()

    def event(self, name: str) -> EventTotals:
        return self._sink


async def run_relay(engine: Any, prefix: str, mode: str, scrapes: list[float]) -> float:
    async with NatsJetStreamPublisher(bench.NATS_URL) as pub:
        relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=prefix)
        if mode == "bare":
            relay.metrics = NoMetrics()
        server = None
        scraper = None
        if mode == "served":
            server = MetricsServer(relay, OutboxStore(engine), host="127.0.0.1", port=0)
            await server.start()
            port = server.port

            def scrape() -> None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    r.read()

            async def scrape_loop() -> None:
                while True:
                    started = time.perf_counter()
                    await asyncio.to_thread(scrape)
                    scrapes.append(time.perf_counter() - started)
                    await asyncio.sleep(SCRAPE_EVERY)

            scraper = asyncio.create_task(scrape_loop())
        start = time.perf_counter()
        counters = await relay.run(once=True)
        elapsed = time.perf_counter() - start
        if scraper is not None:
            scraper.cancel()
        if server is not None:
            await server.close()
    assert counters.published == bench.EVENTS, counters
    return bench.EVENTS / elapsed


async def main() -> None:
    await bench.recreate_database()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=bench.DB_URL)
    load_before = os.getloadavg()
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy import text

    trace.set_tracer_provider(TracerProvider())
    modes = tuple(os.environ.get("QXDB_BENCH_MODES", "bare,recorded,served,traced").split(","))
    results: dict[str, list[float]] = {m: [] for m in modes}
    scrapes: list[float] = []
    try:
        for run in range(bench.RUNS):
            # Rotate the order too, so no contender always runs first after a reload.
            for mode in modes[run % len(modes) :] + modes[: run % len(modes)]:
                tag = uuid.uuid4().hex[:8]
                prefix, stream = f"benchm{mode}{tag}", f"BENCH_M_{mode.upper()}_{tag}"
                await bench.fresh_outbox(engine)
                if mode == "traced":
                    async with engine.begin() as conn:
                        await conn.execute(
                            text(
                                "UPDATE qx_outbox_events SET headers = jsonb_build_object("
                                "'traceparent', '00-' || md5(id::text) || '-' "
                                "|| substr(md5(delivery_id::text), 1, 16) || '-00')"
                            )
                        )
                    # The UPDATE left a dead version of every row: vacuum it away, or the
                    # traced run would pay for the benchmark's bloat, not for tracing.
                    async with engine.connect() as conn:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                        await conn.execute(text("VACUUM ANALYZE qx_outbox_events"))
                await bench.with_stream(prefix, stream)
                rate = await run_relay(engine, prefix, mode, scrapes)
                assert await bench.drop_stream(stream) == bench.EVENTS
                results[mode].append(rate)
                print(f"run {run + 1}: {mode:<9} {rate:10,.0f} events/s", flush=True)
    finally:
        await engine.dispose()
    load_after = os.getloadavg()
    print(f"\n{bench.EVENTS:,} events, {bench.RUNS} interleaved runs")
    for mode in modes:
        print(f"{mode:<28}: {bench.spread(results[mode])}")
    for mode, base in (("recorded", "bare"), ("served", "bare"), ("traced", "recorded")):
        if mode not in results or base not in results:
            continue
        paired = [m / b for m, b in zip(results[mode], results[base], strict=True)]
        label = f"{mode} / {base} (paired)"
        print(f"{label:<28}: {bench.spread(paired, 'x')}  (target >= 0.95x)")
    if scrapes:
        ms = sorted(s * 1000 for s in scrapes)
        print(
            f"{'one scrape (HTTP + stats)':<28}: min {ms[0]:.1f} ms  "
            f"median {statistics.median(ms):.1f} ms  max {ms[-1]:.1f} ms ({len(ms)} scrapes)"
        )
    print(
        "load average (1/5/15 min)   : before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
        + f" on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    asyncio.run(main())
