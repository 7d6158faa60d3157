"""Outbox relay throughput and latency against a real NATS JetStream.

Three contenders move the same outbox (``QXDB_BENCH_EVENTS`` events, 1,000 ordering keys)
to a fresh stream, interleaved ``QXDB_BENCH_RUNS`` times (default 3) so that load on a
shared machine hits them alike:

- **baseline**, the best-effort hand loop: asyncpg + nats-py, claim 500 rows with
  ``FOR UPDATE SKIP LOCKED`` and a lease, publish the whole batch pipelined with
  ``Nats-Msg-Id`` and one shared ack subscription, mark it with one
  ``UPDATE … WHERE id = ANY($1)``; repeat.
- **relay**, ``OutboxRelay`` with default settings, one worker.
- **ordered**, the same with ``ordered=True``.

Then the latency from a writer's commit to the stream's ack, the relay woken by NOTIFY
(events committed one per transaction at about 100/s): p50 and p99.

Run: ``python benchmarks/relay.py`` (QXDB_BENCH_DATABASE_URL, QXDB_BENCH_NATS_URL; the
database is dropped and created). Targets: relay >= 1.2x baseline (median of the paired
ratios), >= 15,000 events/s, ordered >= 0.5x unordered, commit->ack p50 < 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import nats
from sqlalchemy import insert, text

from qxdb.domain import IntegrationEvent
from qxdb.engine import create_engine, make_session_factory
from qxdb.ids import uuid7
from qxdb.outbox import DefaultOutboxRecorder, outbox_row, outbox_table
from qxdb.outbox.publishers import (
    NatsJetStreamPublisher,
    OutboundMessage,
    PublishOutcome,
)
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from qxdb.settings import DatabaseSettings

EVENTS = int(os.environ.get("QXDB_BENCH_EVENTS", "50000"))
RUNS = int(os.environ.get("QXDB_BENCH_RUNS", "3"))
KEYS = 1000
BATCH = 500
LATENCY_EVENTS = 300
DB_URL = os.environ.get(
    "QXDB_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_relay"
)
NATS_URL = os.environ.get("QXDB_BENCH_NATS_URL", "nats://127.0.0.1:4222")
TABLE = outbox_table()


class OrderPlaced(IntegrationEvent):
    event_name = "orders.placed"
    seq: int = 0


def raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def recreate_database() -> None:
    base, _, name = raw_dsn(DB_URL).rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def fresh_outbox(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(TABLE.metadata.drop_all)
        await conn.run_sync(TABLE.metadata.create_all)
        aggregates = [uuid7() for _ in range(KEYS)]
        rows = [
            outbox_row(OrderPlaced(aggregate_id=aggregates[i % KEYS], seq=i)) for i in range(EVENTS)
        ]
        await conn.execute(insert(TABLE), rows)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def with_stream(prefix: str, stream: str) -> None:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        js = pub.connection.jetstream()
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await pub.ensure_stream(stream, prefix, duplicate_window=120)


async def drop_stream(stream: str) -> int:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        js = pub.connection.jetstream()
        count = (await js.stream_info(stream)).state.messages
        await js.delete_stream(stream)
    return int(count)


async def baseline_loop(prefix: str) -> float:
    """The best-effort hand loop: claim 500, publish pipelined, one shared ack
    subscription, mark with one UPDATE = ANY."""
    conn = await asyncpg.connect(raw_dsn(DB_URL))
    nc = await nats.connect(NATS_URL)
    claim = """
        UPDATE qx_outbox_events SET locked_until = now() + interval '30 seconds', locked_by = 'hand'
        WHERE id IN (
            SELECT id FROM qx_outbox_events
            WHERE published_at IS NULL AND dead_at IS NULL
              AND (next_attempt_at IS NULL OR next_attempt_at <= now())
              AND (locked_until IS NULL OR locked_until < now())
            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, event_name, payload::text, delivery_id"""
    mark = """UPDATE qx_outbox_events SET published_at = now(), attempts = attempts + 1,
        locked_until = NULL, locked_by = NULL WHERE id = ANY($1::uuid[]) AND locked_by = 'hand'"""
    inbox = nc.new_inbox()
    waiting: dict[str, asyncio.Future[bytes]] = {}

    async def on_ack(msg: Any) -> None:
        future = waiting.pop(msg.subject, None)
        if future is not None and not future.done():
            future.set_result(msg.data)

    await nc.subscribe(inbox + ".*", cb=on_ack)
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    total = 0
    serial = 0
    try:
        while True:
            rows = await conn.fetch(claim, BATCH)
            if not rows:
                break
            serial += 1
            futures = []
            for i, r in enumerate(rows):
                reply = f"{inbox}.{serial}_{i}"
                future: asyncio.Future[bytes] = loop.create_future()
                waiting[reply] = future
                futures.append(future)
                await nc.publish(
                    f"{prefix}.{r['event_name']}",
                    r["payload"].encode(),
                    reply=reply,
                    headers={"Nats-Msg-Id": str(r["delivery_id"])},
                )
            acks = await asyncio.wait_for(asyncio.gather(*futures), 10)
            ok = [r["id"] for r, ack in zip(rows, acks, strict=True) if b'"error"' not in ack]
            await conn.execute(mark, ok)
            total += len(ok)
    finally:
        await conn.close()
        await nc.close()
    assert total == EVENTS, total
    return EVENTS / (time.perf_counter() - start)


async def qxdb_relay(engine: Any, prefix: str, *, ordered: bool) -> float:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        relay = OutboxRelay(
            make_session_factory(engine),
            pub,
            subject_prefix=prefix,
            config=RelayConfig(ordered=ordered),
        )
        start = time.perf_counter()
        counters = await relay.run(once=True)
        elapsed = time.perf_counter() - start
    assert counters.published == EVENTS, counters
    return EVENTS / elapsed


class AckClock:
    """Wraps the real publisher and notes when each message's ack came back."""

    def __init__(self, inner: NatsJetStreamPublisher) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]:
        outcomes = await self.inner.publish_batch(messages)
        now = time.perf_counter()
        for m in messages:
            self.acked[m.msg_id] = now
        return outcomes

    async def ready(self) -> bool:
        return await self.inner.ready()


async def latency(engine: Any, prefix: str) -> tuple[float, float]:
    factory = make_session_factory(engine)
    recorder = DefaultOutboxRecorder(TABLE)
    committed: dict[str, float] = {}
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        clock = AckClock(pub)
        relay = OutboxRelay(factory, clock, subject_prefix=prefix)
        runner = asyncio.create_task(relay.run())
        await asyncio.sleep(0.5)  # LISTEN is in place
        for i in range(LATENCY_EVENTS):
            async with factory() as session:
                async with session.begin():
                    event = OrderPlaced(aggregate_id=uuid7(), seq=i)
                    await recorder.record(session, [event])
                    row = await session.execute(
                        text("SELECT delivery_id FROM qx_outbox_events ORDER BY id DESC LIMIT 1")
                    )
                    delivery = str(row.scalar_one())
                committed[delivery] = time.perf_counter()
            await asyncio.sleep(0.01)
        for _ in range(500):
            if len(clock.acked) >= LATENCY_EVENTS:
                break
            await asyncio.sleep(0.01)
        relay.stop()
        await runner
    samples = sorted((clock.acked[d] - t) * 1000 for d, t in committed.items() if d in clock.acked)
    assert len(samples) == LATENCY_EVENTS, len(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return statistics.median(samples), p99


def spread(values: Sequence[float], unit: str = "") -> str:
    lo, mid, hi = min(values), statistics.median(values), max(values)
    if unit == "x":
        return f"min {lo:5.2f}x  median {mid:5.2f}x  max {hi:5.2f}x"
    return f"min {lo:8,.0f}  median {mid:8,.0f}  max {hi:8,.0f} events/s"


async def main() -> None:
    await recreate_database()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=DB_URL)
    load_before = os.getloadavg()
    results: dict[str, list[float]] = {"baseline": [], "relay": [], "ordered": []}
    try:
        for run in range(RUNS):
            for name in ("baseline", "relay", "ordered"):
                tag = uuid.uuid4().hex[:8]
                prefix, stream = f"bench{name}{tag}", f"BENCH_{name.upper()}_{tag}"
                await fresh_outbox(engine)
                await with_stream(prefix, stream)
                if name == "baseline":
                    rate = await baseline_loop(prefix)
                else:
                    rate = await qxdb_relay(engine, prefix, ordered=name == "ordered")
                assert await drop_stream(stream) == EVENTS
                results[name].append(rate)
                print(f"run {run + 1}: {name:<8} {rate:10,.0f} events/s", flush=True)

        tag = uuid.uuid4().hex[:8]
        prefix, stream = f"benchlat{tag}", f"BENCH_LAT_{tag}"
        async with engine.begin() as conn:
            await conn.run_sync(TABLE.metadata.drop_all)
            await conn.run_sync(TABLE.metadata.create_all)
        await with_stream(prefix, stream)
        p50, p99 = await latency(engine, prefix)
        await drop_stream(stream)
    finally:
        await engine.dispose()
    load_after = os.getloadavg()
    ratio = [r / b for r, b in zip(results["relay"], results["baseline"], strict=True)]
    ordered_ratio = [o / r for o, r in zip(results["ordered"], results["relay"], strict=True)]
    relay_median = statistics.median(results["relay"])
    print(f"\n{EVENTS:,} events, {KEYS:,} keys, batches of {BATCH}, {RUNS} interleaved runs")
    print(f"baseline (best-effort hand loop) : {spread(results['baseline'])}")
    print(f"qxdb relay, 1 worker             : {spread(results['relay'])}")
    print(f"qxdb relay, ordered              : {spread(results['ordered'])}")
    print(f"relay / baseline (paired)        : {spread(ratio, 'x')}  (target >= 1.20x)")
    print(f"ordered / unordered (paired)     : {spread(ordered_ratio, 'x')}  (target >= 0.50x)")
    print(
        f"commit -> stream ack, NOTIFY     : p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 < 20)"
    )
    print(
        "load average (1/5/15 min)        : before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
        + f" on {os.cpu_count()} cores"
    )
    verdicts = {
        "relay >= 1.2x baseline": statistics.median(ratio) >= 1.2,
        ">= 15,000 events/s": relay_median >= 15_000,
        "ordered >= 0.5x unordered": statistics.median(ordered_ratio) >= 0.5,
        "p50 < 20 ms": p50 < 20,
    }
    print("targets: " + "; ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in verdicts.items()))


if __name__ == "__main__":
    asyncio.run(main())
