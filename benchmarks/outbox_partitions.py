"""The partitioned outbox against the plain one (issue 21).

Run: ``python benchmarks/outbox_partitions.py [--quick]`` (PostgreSQL and NATS JetStream;
``QXDB_BENCH_DATABASE_URL`` or a ``qxdb_bench_partitions`` database on the local server,
created if missing; ``QXDB_BENCH_NATS_URL``, default ``nats://127.0.0.1:4222``).

Two tables with the same rows: ``DAYS`` (10) daily partitions of ``PER_DAY`` rows each,
10,000,000 in all (``QXDB_BENCH_PER_DAY`` sets the day; ``--quick``: 10,000), every row
published but the newest ``PENDING`` (50,000; 5,000 with ``--quick``). The tables are
kept between runs (a comment on the partitioned one says what they hold). Interleaved,
>= 3 rounds (benchmarks/_common.py); ours is the partitioned table, the baseline the plain
one with the same indexes:

* retention of the oldest day: ``OutboxPartitions.drop_older_than`` (detach, re-check,
  drop) against ``OutboxStore.purge`` of the same rows from the plain table; the day is
  put back after each round (untimed). While the drop runs, two probes on connections of
  their own do what a relay and a writer do (a ``FOR UPDATE SKIP LOCKED`` claim of
  pending rows, an ``INSERT``) back to back; the longest of them is the longest a relay
  waited on the drop's locks. Targets: drop < 1 s, no probe > 100 ms.
* relay throughput: ``OutboxRelay`` with default settings (``run(once=True)``) publishing
  the ``PENDING`` rows to JetStream, the rows made pending again between rounds. Target:
  within 10 %.
* ``OutboxStore.stats()`` with the ``PENDING`` rows pending. Target: within 10 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import Comparison, ensure_database, print_header, print_table, quick, rounds, run_async
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.engine import create_engine, make_session_factory
from qxdb.outbox.partitions import OutboxPartitions
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.outbox.relay import OutboxRelay
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings

DAYS = 10
PER_DAY = 10_000 if quick() else int(os.environ.get("QXDB_BENCH_PER_DAY", "1000000"))
PENDING = 5_000 if quick() else 50_000
PLAIN, PARTED = "bench_plain_events", "bench_parted_events"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_partitions"
NATS_URL = os.environ.get("QXDB_BENCH_NATS_URL", "nats://127.0.0.1:4222")
STREAM, PREFIX = "QXDB_BENCH_PARTITIONS", "bench.partitions"
RUNS = rounds(int(os.environ.get("QXDB_BENCH_RUNS", "5")))
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(microseconds=86_400_000_000 // PER_DAY)
# The pending tail: rows recorded at or after this instant.
TAIL = START + (DAYS * PER_DAY - PENDING) * STEP

ROW_SQL = """
INSERT INTO {table} (id, event_name, payload, occurred_at, recorded_at, delivery_id,
    published_at, attempts)
SELECT md5(CAST(:seed AS text) || g)::uuid, 'bench.event_' || (g % 20),
    jsonb_build_object('n', g),
    CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval),
    CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval),
    gen_random_uuid(),
    CASE WHEN g > :pending_from THEN NULL
         ELSE CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval) END,
    1
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
"""

# Every pending row of the tail made pending again, with a new delivery id (the stream
# would take the old one for a duplicate).
RESET_SQL = """
UPDATE {table} SET published_at = NULL, attempts = 0, locked_until = NULL,
    locked_by = NULL, next_attempt_at = NULL, delivery_id = gen_random_uuid()
WHERE occurred_at >= :tail AND published_at IS NOT NULL
"""


async def fill(engine: AsyncEngine, name: str, lo: int, hi: int) -> None:
    """Rows ``lo..hi`` of the data set, in slices of one transaction each."""
    params = {"seed": name, "start": START, "step": STEP, "pending_from": DAYS * PER_DAY - PENDING}
    for first in range(lo, hi + 1, 500_000):
        last = min(hi, first + 499_999)
        async with engine.begin() as conn:
            await conn.execute(text(ROW_SQL.format(table=name)), {**params, "lo": first, "hi": last})


async def vacuum(engine: AsyncEngine, *names: str) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in names:
            await conn.execute(text(f"VACUUM ANALYZE {name}"))


async def build(engine: AsyncEngine) -> None:
    marker = f"qxdb bench partitions v2 {DAYS} {PER_DAY} {PENDING}"
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": PARTED}
            )
        ).scalar()
    if found == marker:
        print("reusing the tables")
        return
    print(f"building two tables of {DAYS * PER_DAY:,} rows …", flush=True)
    started = time.perf_counter()
    for name, parted in ((PLAIN, False), (PARTED, True)):
        table = include_outbox_table(MetaData(), name, partitioned=parted)
        async with engine.begin() as conn:
            await conn.run_sync(lambda c, t=table: t.drop(c, checkfirst=True))
            await conn.run_sync(table.create)
        if parted:
            await OutboxPartitions(engine, name).create_ahead(DAYS, now=START)
        await fill(engine, name, 1, DAYS * PER_DAY)
        print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    await vacuum(engine, PLAIN, PARTED)
    async with engine.begin() as conn:
        await conn.execute(text(f"COMMENT ON TABLE {PARTED} IS '{marker}'"))
    print(f"built in {time.perf_counter() - started:.1f} s", flush=True)


class LockProbe:
    """What a relay and a writer do, back to back on their own connections, while
    ``watching``: the longest single statement is the longest wait on a lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.longest = 0.0
        self.statements = 0
        self._stop = asyncio.Event()

    async def _loop(self, sql: str) -> None:
        async with self.engine.connect() as conn:
            while not self._stop.is_set():
                started = time.perf_counter()
                await conn.execute(text(sql))
                await conn.rollback()
                self.longest = max(self.longest, time.perf_counter() - started)
                self.statements += 1
                await asyncio.sleep(0.001)

    @contextlib.asynccontextmanager
    async def watching(self) -> Any:
        claim = (
            f"SELECT id FROM {PARTED} WHERE published_at IS NULL AND dead_at IS NULL "
            "ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED"
        )
        write = (
            f"INSERT INTO {PARTED} (id, event_name, payload, occurred_at, recorded_at, "
            "delivery_id) VALUES (gen_random_uuid(), 'probe', '{}', now(), now(), "
            "gen_random_uuid())"
        )
        self._stop.clear()
        tasks = [asyncio.create_task(self._loop(sql)) for sql in (claim, write)]
        await asyncio.sleep(0.05)
        try:
            yield self
        finally:
            await asyncio.sleep(0.05)
            self._stop.set()
            await asyncio.gather(*tasks)


async def main() -> None:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    print_header(
        f"partitioned outbox: {DAYS} daily partitions x {PER_DAY:,} rows, {PENDING:,} pending",
        "the same rows in the plain table (purge by DELETE batches, the same relay and stats)",
    )
    try:
        await build(engine)
        plain, parted = OutboxStore(engine, PLAIN), OutboxStore(engine, PARTED)
        parts = OutboxPartitions(engine, PARTED)
        # Retention: everything older than the end of the first day.
        first_end = START + timedelta(days=1)
        now = first_end + timedelta(days=7)
        age = timedelta(days=7)
        probe = LockProbe(engine)

        drop_times: list[float] = []
        longest: list[float] = []

        async def drop() -> None:
            async with probe.watching():
                probe.longest = 0.0
                started = time.perf_counter()
                report = await parts.drop_older_than(age, now=now)
                drop_times.append(time.perf_counter() - started)
            longest.append(probe.longest)
            assert len(report.dropped) == 1 and not report.refused, report

        async def purge() -> None:
            report = await plain.purge(age, now=now)
            assert report.rows == PER_DAY, report.rows

        async def put_back() -> None:
            names = {p.name for p in await parts.list_partitions()}
            if parts.partition_name(START) not in names:
                await parts.create_ahead(1, now=START)
                await fill(engine, PARTED, 1, PER_DAY)
                await vacuum(engine, parts.partition_name(START))
            async with engine.connect() as conn:
                n = (
                    await conn.execute(
                        text(f"SELECT count(*) FROM {PLAIN} WHERE occurred_at < :e"),
                        {"e": first_end},
                    )
                ).scalar_one()
            if n == 0:
                await fill(engine, PLAIN, 1, PER_DAY)
                await vacuum(engine, PLAIN)

        await put_back()
        # The drop is timed by itself, without the probes' start and end.
        retention = await run_async([drop, purge], RUNS, between=put_back)
        retention[0] = drop_times

        # The relay, as deployed: default settings, a real JetStream.
        async with NatsJetStreamPublisher(NATS_URL) as pub:
            js = pub.connection.jetstream()
            with contextlib.suppress(Exception):
                await js.delete_stream(STREAM)
            await pub.ensure_stream(STREAM, PREFIX, duplicate_window=120)

            async def reset() -> None:
                async with engine.begin() as conn:
                    for name in (PLAIN, PARTED):
                        await conn.execute(text(RESET_SQL.format(table=name)), {"tail": TAIL})
                await vacuum(engine, PLAIN, PARTED)
                await js.purge_stream(STREAM)

            def relay_on(name: str) -> Any:
                async def drain() -> None:
                    relay = OutboxRelay(
                        make_session_factory(engine), pub, subject_prefix=PREFIX, table=name
                    )
                    counters = await relay.run(once=True)
                    assert counters.published == PENDING, counters

                return drain

            await reset()
            relays = await run_async([relay_on(PARTED), relay_on(PLAIN)], RUNS, between=reset)
            stats = await run_async([parted.stats, plain.stats], max(RUNS, 10))
            await js.delete_stream(STREAM)

        lines = []
        for title, (ours, base), target in (
            ("retention of one day (drop vs purge)", retention, "drop < 1 s"),
            (f"relay: publish {PENDING:,} pending", relays, "within 10 %"),
            ("stats()", stats, "within 10 %"),
        ):
            comparison = Comparison(title, target=target)
            for o, b in zip(ours, base, strict=True):
                comparison.add(o, b)
            if title.startswith("retention"):
                comparison.verdict = comparison.ours.median < 1.0
            else:
                comparison.verdict = comparison.ratios.median <= 1.10
            lines.append(comparison)
        print_table(lines, RUNS)
        rates = sorted(PENDING / s for s in relays[0])
        print(
            f"relay on the partitioned table: {rates[0]:,.0f}/{rates[len(rates) // 2]:,.0f}/"
            f"{rates[-1]:,.0f} events/s (min/median/max)"
        )
        worst = max(longest)
        print(
            f"longest claim or insert while a partition was dropped: {worst * 1000:.1f} ms "
            f"over {probe.statements:,} probe statements "
            f"[no wait > 100 ms {'met' if worst <= 0.1 else 'MISSED'}]"
        )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
