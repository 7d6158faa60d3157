"""What one refresh of ``qxdb outbox top`` costs on a 1,000,000-row outbox, 1% pending.

Interleaved ``QXDB_BENCH_RUNS`` times (default 20): one ``OutboxStore.stats()`` (what
``qxdb outbox stats`` runs: the baseline, since top reuses it) and one ``OutboxTop.sample()``
(stats plus the lease holders and the rows recorded since the last sample). Prints
min/median/max milliseconds of each (wall time seen by the client, so the database time
is at most that) and the paired ratio. Target: a refresh under 50 ms.

Run: ``python benchmarks/outbox_top.py`` (QXDB_BENCH_TOP_DATABASE_URL; that database is
dropped and created).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import asyncpg
from sqlalchemy import text

from qxdb.engine import create_engine
from qxdb.outbox import outbox_table
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.top import OutboxTop
from qxdb.settings import DatabaseSettings

ROWS = int(os.environ.get("QXDB_BENCH_ROWS", "1000000"))
RUNS = int(os.environ.get("QXDB_BENCH_RUNS", "20"))
DB_URL = os.environ.get(
    "QXDB_BENCH_TOP_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_top",
)
TABLE = outbox_table()


async def recreate_database() -> None:
    base, _, name = DB_URL.replace("postgresql+asyncpg://", "postgresql://", 1).rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def fill(engine: object) -> None:
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.run_sync(TABLE.metadata.create_all)
        # 1% pending, 0.1% of all rows leased by one of four relays, 0.05% dead.
        await conn.execute(
            text(
                """
                INSERT INTO qx_outbox_events
                  (id, event_name, payload, occurred_at, published_at, attempts, delivery_id,
                   ordering_key, locked_by, locked_until, dead_at)
                SELECT gen_random_uuid(), 'event.' || (g % 20), '{}'::jsonb, now(),
                       CASE WHEN g % 100 = 0 OR g % 2000 = 1 THEN NULL ELSE now() END,
                       1, gen_random_uuid(), (g % 5000)::text,
                       CASE WHEN g % 1000 = 0 THEN 'relay-' || ((g / 1000) % 4) END,
                       CASE WHEN g % 1000 = 0 THEN now() + interval '1 hour' END,
                       CASE WHEN g % 2000 = 1 THEN now() END
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"rows": ROWS},
        )
    # VACUUM cannot run in a transaction; it sets the visibility map the index-only
    # scans of a live (autovacuumed) table would have.
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE qx_outbox_events"))


def spread(values: list[float], unit: str) -> str:
    return (
        f"min {min(values):7.2f}{unit}  median {statistics.median(values):7.2f}{unit}  "
        f"max {max(values):7.2f}{unit}"
    )


async def main() -> None:
    await recreate_database()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=DB_URL)
    try:
        started = time.perf_counter()
        await fill(engine)
        print(f"{ROWS:,} rows loaded in {time.perf_counter() - started:.0f} s", flush=True)
        load_before = os.getloadavg()
        store = OutboxStore(engine)
        sampler = OutboxTop(store)
        await sampler.sample()  # warm: the table check, the first max(id)
        stats_ms: list[float] = []
        top_ms: list[float] = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            await store.stats()
            stats_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            snap = await sampler.sample()
            top_ms.append((time.perf_counter() - t0) * 1000)
        load_after = os.getloadavg()
    finally:
        await engine.dispose()
    print(
        f"pending {snap.stats.pending:,}, dead {snap.stats.dead:,}, "
        f"{len(snap.leases)} lease holders"
    )
    print(f"stats() (baseline, = outbox stats) : {spread(stats_ms, ' ms')}")
    print(f"top sample()                      : {spread(top_ms, ' ms')}  (target < 50 ms)")
    ratio = [t / s for t, s in zip(top_ms, stats_ms, strict=True)]
    print(f"top / stats (paired)              : {spread(ratio, 'x')}")
    own = [t - s for t, s in zip(top_ms, stats_ms, strict=True)]
    print(f"top's own statement (top - stats) : {spread(own, ' ms')}")
    print(
        "load average (1/5/15 min)         : before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
        + f" on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    asyncio.run(main())
