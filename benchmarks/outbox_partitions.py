"""The partitioned outbox against the plain one (issue 21), scaled down.

Run: ``python benchmarks/outbox_partitions.py [--quick]`` (PostgreSQL; ``QXDB_BENCH_DATABASE_URL``
or a ``qxdb_bench_partitions`` database on the local server, created if missing).

Two tables with the same rows: ``DAYS`` (10) daily partitions of ``PER_DAY`` rows each
(500,000 in all, 100,000 with ``--quick``; the issue's 10,000,000 does not fit a shared
2-core machine in a session), every row published except 1% pending in the newest day.
Interleaved, >= 3 rounds (benchmarks/_common.py); ours is the partitioned table, the
baseline the plain one:

* retention of the oldest day: ``OutboxPartitions.drop_older_than`` (detach, re-check,
  drop) against ``OutboxStore.purge`` of the same rows from the plain table; the day is
  put back after each round (untimed). Target: drop < 1 s.
* stats: ``OutboxStore.stats()`` on each. Target: within 10 %.
* the relay's mark: ``UPDATE … SET published_at = now() WHERE id = ANY(500 ids)`` of
  pending rows (then put back), the statement an id lookup cannot prune to one partition.
  Target: within 10 %.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import Comparison, ensure_database, print_header, print_table, quick, rounds, run_async
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.engine import create_engine
from qxdb.outbox.partitions import OutboxPartitions
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings

DAYS = 10
PER_DAY = 10_000 if quick() else 50_000
PLAIN, PARTED = "bench_plain_events", "bench_parted_events"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_partitions"
RUNS = rounds(5)
START = datetime(2026, 1, 1, tzinfo=UTC)

ROW_SQL = """
INSERT INTO {table} (id, event_name, payload, occurred_at, recorded_at, delivery_id,
    published_at, attempts)
SELECT md5('i' || g)::uuid, 'bench.event_' || (g % 20), jsonb_build_object('n', g),
    CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval),
    CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval),
    md5('d' || g)::uuid,
    CASE WHEN g > :pending_from THEN NULL
         ELSE CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval) END,
    1
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
"""


def _params(lo: int, hi: int) -> dict[str, Any]:
    total = DAYS * PER_DAY
    return {
        "start": START,
        "step": timedelta(microseconds=86_400_000_000 // PER_DAY),
        "pending_from": total - total // 100,
        "lo": lo,
        "hi": hi,
    }


async def fill(engine: AsyncEngine, name: str, lo: int, hi: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(ROW_SQL.format(table=name)), _params(lo, hi))


async def build(engine: AsyncEngine) -> None:
    marker = f"qxdb bench partitions v1 {DAYS} {PER_DAY}"
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
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {PLAIN}"))
        await conn.execute(text(f"VACUUM ANALYZE {PARTED}"))
        await conn.execute(text(f"COMMENT ON TABLE {PARTED} IS '{marker}'"))
    print(f"built in {time.perf_counter() - started:.1f} s")


async def main() -> None:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    print_header(
        f"partitioned outbox: {DAYS} daily partitions x {PER_DAY:,} rows (scaled down)",
        "the same rows in the plain table (purge by DELETE batches, same stats, same UPDATE)",
    )
    try:
        await build(engine)
        plain, parted = OutboxStore(engine, PLAIN), OutboxStore(engine, PARTED)
        parts = OutboxPartitions(engine, PARTED)
        # Retention: everything older than the end of the first day.
        first_end = START + timedelta(days=1)
        now = first_end + timedelta(days=7)
        age = timedelta(days=7)

        async def drop() -> None:
            report = await parts.drop_older_than(age, now=now)
            assert len(report.dropped) == 1 and not report.refused, report

        async def purge() -> None:
            report = await plain.purge(age, now=now)
            assert report.rows == PER_DAY, report.rows

        async def put_back() -> None:
            names = {p.name for p in await parts.list_partitions()}
            if parts.partition_name(START) not in names:
                await parts.create_ahead(1, now=START)
                await fill(engine, PARTED, 1, PER_DAY)
            async with engine.connect() as conn:
                n = (
                    await conn.execute(
                        text(f"SELECT count(*) FROM {PLAIN} WHERE recorded_at < :e"),
                        {"e": first_end},
                    )
                ).scalar_one()
            if n == 0:
                await fill(engine, PLAIN, 1, PER_DAY)

        await put_back()
        retention = await run_async([drop, purge], RUNS, between=put_back)
        stats = await run_async([parted.stats, plain.stats], max(RUNS, 10))

        async with engine.connect() as conn:
            ids = list(
                (
                    await conn.execute(
                        text(f"SELECT id FROM {PLAIN} WHERE published_at IS NULL LIMIT 500")
                    )
                ).scalars()
            )

        def marker(name: str) -> Any:
            async def mark() -> None:
                async with engine.connect() as conn:  # rolled back: every round the same
                    done = await conn.execute(
                        text(f"UPDATE {name} SET published_at = now() WHERE id = ANY(:ids)"),
                        {"ids": ids},
                    )
                    assert done.rowcount == 500
                    await conn.rollback()

            return mark

        marks = await run_async([marker(PARTED), marker(PLAIN)], max(RUNS, 10))
        lines = []
        for title, (ours, base), target, ok in (
            ("retention of one day (drop vs purge)", retention, "drop < 1 s", None),
            ("stats()", stats, "within 10 %", None),
            ("mark 500 rows by id = ANY", marks, "within 10 %", None),
        ):
            comparison = Comparison(title, target=target)
            for o, b in zip(ours, base, strict=True):
                comparison.add(o, b)
            if ok is None and title.startswith("retention"):
                comparison.verdict = comparison.ours.median < 1.0
            elif ok is None:
                comparison.verdict = comparison.ratios.median <= 1.10
            lines.append(comparison)
        print_table(lines, RUNS)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
