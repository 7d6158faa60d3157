"""Outbox operations on 1,000,000 rows (1% pending): stats, inspect, replay, purge.

Run: ``python benchmarks/outbox_ops.py [--quick]`` (PostgreSQL; ``QXDB_BENCH_DATABASE_URL``
or a ``qxdb_bench_outbox`` database on the local server, created if missing). The table is
built once with one ``INSERT … SELECT generate_series`` and reused by later runs; replay
and purge put back what they changed after every run (untimed), so each round starts from
the same state.

Every comparison is ours against the best hand-written raw asyncpg a user would write for
the same result, interleaved, >= 3 rounds (benchmarks/_common.py):

* stats: the same exact pending/failed/dead counts, oldest pending and per-event counts,
  through the partial indexes, plus the planner's row estimate (4 queries on one open
  connection). Target: under 100 ms.
* inspect: the first 50 pending rows, ``ORDER BY id LIMIT 51`` on an open connection.
  Target: every run under 5 ms.
* replay of 100,000 published rows (a window) as the command does it (count, then
  batches): against the ids fetched once then ``UPDATE … WHERE id = ANY($1)`` in batches
  of 10,000, each batch one autocommitted statement, the time including the id fetch.
  (A keyset loop of ``UPDATE … WHERE id IN (SELECT … LIMIT 10000)``, the other obvious
  hand-written form, is slower: ``--with-in-baseline`` adds it.) Targets:
  >= 50,000 rows/s (median, on a quiet machine), longest statement < 0.5 s.
* purge of the oldest published rows: against the ids fetched then ``DELETE … = ANY``
  batches of 10,000. Target: longest statement < 0.5 s.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from _common import (
    Comparison,
    ensure_database,
    plain_dsn,
    print_header,
    print_table,
    quick,
    rounds,
)
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateTable

from qxdb.engine import create_engine
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings

ROWS = 1_000_000
PENDING_FROM = ROWS - ROWS // 100  # rows after this one are pending (the newest 1%)
STEP_MS = 1_000  # occurred_at advances one second per row: 1M rows span ~11.6 days
TABLE = "bench_outbox_events"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_outbox"
REPLAY_FROM, REPLAY_TO = 600_000, 700_000  # rows g in (from, to]: published, replayed
PURGE_TO = 50_000 if quick() else 100_000  # published rows g <= this are purged
RUNS = rounds(3)
READ_RUNS = rounds(30, 10)
BATCH = 10_000

# Row g is a pure function of g (ids and times), so a phase can put back what it changed.
# Status by g: > PENDING_FROM pending (every 10th of them failed); g % 1000 == 500 dead;
# every other row published one second after it occurred.
ROW_SQL = """
INSERT INTO {table} (id, event_name, event_version, payload, occurred_at, recorded_at,
    correlation_id, tenant_id, published_at, attempts, last_error, delivery_id,
    ordering_key, dead_at)
SELECT
    (lpad(to_hex(CAST(:base_ms AS bigint) + g * {step}), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
        || '8' || substr(md5(g::text), 1, 15))::uuid,
    'bench.event_' || (g % 20),
    1,
    jsonb_build_object('event_id', md5('e' || g::text)::uuid, 'n', g),
    to_timestamp((CAST(:base_ms AS bigint) + g * {step}) / 1000.0),
    to_timestamp((CAST(:base_ms AS bigint) + g * {step}) / 1000.0),
    md5('c' || g::text)::uuid,
    md5('t' || (g % 50)::text)::uuid,
    CASE WHEN g > {pending_from} OR g % 1000 = 500 THEN NULL
         ELSE to_timestamp((CAST(:base_ms AS bigint) + g * {step}) / 1000.0 + 1) END,
    CASE WHEN g > {pending_from} AND g % 10 = 0 THEN 3
         WHEN g % 1000 = 500 THEN 10 ELSE 1 END,
    CASE WHEN g > {pending_from} AND g % 10 = 0 THEN 'broker timeout'
         WHEN g % 1000 = 500 THEN 'rejected' ELSE NULL END,
    md5('d' || g::text)::uuid,
    'agg-' || (g % 5000),
    CASE WHEN g % 1000 = 500 AND g <= {pending_from}
         THEN to_timestamp((CAST(:base_ms AS bigint) + g * {step}) / 1000.0 + 60) ELSE NULL END
FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS g
WHERE {where}
"""


def row_sql(table: Table, where: str = "true") -> Any:
    quoted = table.name  # a fixed, validated benchmark identifier
    return text(ROW_SQL.format(table=quoted, step=STEP_MS, pending_from=PENDING_FROM, where=where))


def occurred(base_ms: int, g: int) -> datetime:
    return datetime.fromtimestamp((base_ms + g * STEP_MS) / 1000, UTC)


async def build(engine: AsyncEngine, table: Table) -> int:
    """Build the table unless a complete one is there; returns its base time (ms)."""
    async with engine.begin() as conn:
        marker = (
            await conn.execute(
                text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": table.name}
            )
        ).scalar()
        if marker and marker.startswith(f"qxdb bench v2 {ROWS} "):
            base_ms = int(marker.split()[-1])
            count = (await conn.execute(text(f"SELECT count(*) FROM {table.name}"))).scalar()
            print(f"reusing {table.name} ({count:,} rows)")
    if marker and marker.startswith(f"qxdb bench v2 {ROWS} "):
        if count != ROWS:  # an interrupted run left rows deleted or replayed: put them back
            await restore_purged(engine, table, base_ms)
        await restore_published(engine, table, base_ms)
        return base_ms
    base_ms = int((datetime.now(UTC) - timedelta(days=30)).timestamp() * 1000)
    print(f"building {table.name}: {ROWS:,} rows with generate_series …", flush=True)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: table.drop(c, checkfirst=True))
        await conn.execute(CreateTable(table))  # indexes after the load: faster
        await conn.execute(row_sql(table), {"base_ms": base_ms, "lo": 1, "hi": ROWS})
        for index in table.indexes:
            await conn.run_sync(index.create)
        await conn.execute(
            text(f"COMMENT ON TABLE {table.name} IS 'qxdb bench v2 {ROWS} {base_ms}'")
        )
    await vacuum(engine, table)
    print(f"built in {time.perf_counter() - started:.1f} s")
    return base_ms


async def vacuum(engine: AsyncEngine, table: Table) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {table.name}"))


async def restore_published(engine: AsyncEngine, table: Table, base_ms: int) -> None:
    """Put rows REPLAY_FROM < g <= REPLAY_TO back to published (as built)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                f"UPDATE {table.name} SET published_at = occurred_at + interval '1 second', "
                "attempts = 1, last_error = NULL WHERE occurred_at >= :a AND occurred_at < :b "
                "AND dead_at IS NULL AND published_at IS NULL"
            ),
            {"a": occurred(base_ms, REPLAY_FROM + 1), "b": occurred(base_ms, REPLAY_TO + 1)},
        )
    if result.rowcount:
        await vacuum(engine, table)


async def restore_purged(
    engine: AsyncEngine, table: Table, base_ms: int, hi: int = ROWS // 2
) -> None:
    """Insert again the published rows g <= ``hi`` that a purge deleted (as built)."""
    async with engine.begin() as conn:
        await conn.execute(
            row_sql(
                table,
                where=f"g % 1000 <> 500 AND NOT EXISTS (SELECT 1 FROM {table.name} x "
                f"WHERE x.occurred_at = to_timestamp((CAST(:base_ms AS bigint) + g * {STEP_MS}) / 1000.0))",
            ),
            {"base_ms": base_ms, "lo": 1, "hi": hi},
        )
    await vacuum(engine, table)


# -- reads -------------------------------------------------------------------------------

PENDING = "published_at IS NULL AND dead_at IS NULL"


async def raw_stats(raw: asyncpg.Connection) -> None:
    """The same figures as ``store.stats()``, by hand, through the partial indexes."""
    t = TABLE
    async with raw.transaction(readonly=True):
        await raw.fetchrow(
            f"SELECT count(*), count(last_error), min(recorded_at), now() FROM {t} WHERE {PENDING}"
        )
        await raw.fetch(
            f"SELECT event_name, count(*), count(last_error) FROM {t} WHERE {PENDING} "
            "GROUP BY event_name"
        )
        await raw.fetch(
            f"SELECT event_name, count(*) FROM {t} WHERE dead_at IS NOT NULL "
            "AND published_at IS NULL GROUP BY event_name"
        )
        await raw.fetchval(f"SELECT reltuples::bigint FROM pg_class WHERE oid = '{t}'::regclass")


async def raw_first_pending(raw: asyncpg.Connection) -> None:
    rows = await raw.fetch(f"SELECT * FROM {TABLE} WHERE {PENDING} ORDER BY id LIMIT 51")
    assert len(rows) == 51


async def bench_reads(store: OutboxStore, raw: asyncpg.Connection) -> list[Comparison]:
    pending = OutboxSelection(status="pending")

    async def ours_list() -> None:
        page = await store.list_rows(pending, limit=50)
        assert len(page.rows) == 50

    for _ in range(3):  # warm: pool, prepared statements, buffers
        await store.stats()
        await raw_stats(raw)
        await ours_list()
        await raw_first_pending(raw)
    stats = Comparison("stats (exact pending, estimated published)", target="< 100 ms")
    inspect = Comparison("inspect --status pending --limit 50", target="every run < 5 ms")
    for r in range(READ_RUNS):
        pairs: list[tuple[Comparison, Any, Any]] = [
            (stats, store.stats, lambda: raw_stats(raw)),
            (inspect, ours_list, lambda: raw_first_pending(raw)),
        ]
        for comparison, ours, base in pairs:
            sides = [ours, base] if r % 2 == 0 else [base, ours]
            took = []
            for side in sides:
                started = time.perf_counter()
                await side()
                took.append(time.perf_counter() - started)
            o, b = (took[0], took[1]) if r % 2 == 0 else (took[1], took[0])
            comparison.add(o, b)
    stats.verdict = stats.ours.median < 0.1
    inspect.verdict = inspect.ours.max < 0.005
    return [stats, inspect]


# -- replay ------------------------------------------------------------------------------

SET_PENDING = (
    "published_at = NULL, attempts = 0, last_error = NULL, dead_at = NULL, "
    "next_attempt_at = NULL, locked_until = NULL, locked_by = NULL, "
    "delivery_id = gen_random_uuid()"
)
WINDOW = "published_at IS NOT NULL AND occurred_at >= $1 AND occurred_at < $2"


class Timer:
    """The longest single statement of a run."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def __call__(self, coro: Any) -> Any:
        started = time.perf_counter()
        result = await coro
        self.longest = max(self.longest, time.perf_counter() - started)
        return result


async def raw_replay_by_ids(raw: asyncpg.Connection, a: datetime, b: datetime) -> tuple[int, float]:
    timer = Timer()
    ids = [
        r[0]
        for r in await timer(
            raw.fetch(f"SELECT id FROM {TABLE} WHERE {WINDOW} ORDER BY occurred_at, id", a, b)
        )
    ]
    for i in range(0, len(ids), BATCH):  # one statement, its own transaction (autocommit)
        await timer(
            raw.execute(
                f"UPDATE {TABLE} SET {SET_PENDING} WHERE id = ANY($1::uuid[])", ids[i : i + BATCH]
            )
        )
    return len(ids), timer.longest


async def raw_replay_keyset(raw: asyncpg.Connection, a: datetime, b: datetime) -> tuple[int, float]:
    timer = Timer()
    done, last = 0, None
    while True:
        after = "AND (occurred_at, id) > ($3, $4)" if last else ""
        rows = await timer(
            raw.fetch(
                f"UPDATE {TABLE} SET {SET_PENDING} WHERE id IN (SELECT id FROM {TABLE} "
                f"WHERE {WINDOW} {after} ORDER BY occurred_at, id LIMIT {BATCH}) "
                "RETURNING occurred_at, id",
                a,
                b,
                *(last or ()),
            )
        )
        done += len(rows)
        if len(rows) < BATCH:
            return done, timer.longest
        last = max((r[0], r[1]) for r in rows)


async def bench_replay(
    engine: AsyncEngine, store: OutboxStore, raw: asyncpg.Connection, base_ms: int
) -> list[Comparison]:
    a, b = occurred(base_ms, REPLAY_FROM + 1), occurred(base_ms, REPLAY_TO + 1)
    window = OutboxSelection(status="published", since=a, until=b)
    longest: dict[str, list[float]] = {"ours": [], "ids": [], "keyset": []}
    counts: dict[str, int] = {}

    async def ours() -> None:
        plan = await store.plan_replay(window)  # as the command does: count, then batches
        report = await store.replay(window, expected=plan.count)
        counts["ours"] = report.rows
        longest["ours"].append(report.longest_statement_seconds)

    async def by_ids() -> None:
        counts["ids"], took = await raw_replay_by_ids(raw, a, b)
        longest["ids"].append(took)

    async def keyset() -> None:
        counts["keyset"], took = await raw_replay_keyset(raw, a, b)
        longest["keyset"].append(took)

    sides = {"ours": ours, "ids": by_ids}
    if "--with-in-baseline" in sys.argv:
        sides["keyset"] = keyset
    times: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(RUNS):
        names = list(sides)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            started = time.perf_counter()
            await sides[name]()
            times[name].append(time.perf_counter() - started)
            await restore_published(engine, store.table, base_ms)  # untimed
    assert len(set(counts.values())) == 1, counts
    n = counts["ours"]
    out = []
    for name, label in (("ids", "ids + UPDATE = ANY"), ("keyset", "UPDATE IN (SELECT … LIMIT)")):
        if name not in sides:
            continue
        c = Comparison(f"replay {n:,} rows vs {label}", unit="s", count=n)
        for o, base in zip(times["ours"], times[name], strict=True):
            c.add(o, base)
        out.append(c)
    rate = statistics.median([n / t for t in times["ours"]])
    out[0].target = ">= 50,000 rows/s median"
    out[0].verdict = rate >= 50_000
    stmt = Comparison("replay: longest statement", unit="ms", target="< 500 ms")
    for o, base in zip(longest["ours"], longest["ids"], strict=True):
        stmt.add(o, base)
    stmt.verdict = stmt.ours.max < 0.5
    out.append(stmt)
    return out


# -- purge -------------------------------------------------------------------------------


async def raw_purge(raw: asyncpg.Connection, cutoff: datetime) -> tuple[int, float]:
    timer = Timer()
    ids = [
        r[0]
        for r in await timer(
            raw.fetch(
                f"SELECT id FROM {TABLE} WHERE published_at < $1 ORDER BY published_at", cutoff
            )
        )
    ]
    for i in range(0, len(ids), BATCH):  # one statement, its own transaction (autocommit)
        await timer(
            raw.execute(f"DELETE FROM {TABLE} WHERE id = ANY($1::uuid[])", ids[i : i + BATCH])
        )
    return len(ids), timer.longest


async def bench_purge(
    engine: AsyncEngine, store: OutboxStore, raw: asyncpg.Connection, base_ms: int
) -> list[Comparison]:
    # published_at of row g is occurred(g) + 1 s: a cutoff just after row PURGE_TO's.
    now = occurred(base_ms, PURGE_TO) + timedelta(seconds=1, milliseconds=500)
    cutoff = now
    longest: dict[str, list[float]] = {"ours": [], "raw": []}
    counts: dict[str, int] = {}

    async def ours() -> None:
        plan = await store.plan_purge(timedelta(0), now=now)
        report = await store.purge(timedelta(0), now=now, expected=plan.count)
        counts["ours"] = report.rows
        longest["ours"].append(report.longest_statement_seconds)

    async def by_ids() -> None:
        counts["raw"], took = await raw_purge(raw, cutoff)
        longest["raw"].append(took)

    comparison = Comparison("purge", unit="s")
    for r in range(RUNS):
        sides = [("ours", ours), ("raw", by_ids)]
        if r % 2:
            sides.reverse()
        took: dict[str, float] = {}
        for name, side in sides:
            started = time.perf_counter()
            await side()
            took[name] = time.perf_counter() - started
            await restore_purged(engine, store.table, base_ms, PURGE_TO)  # untimed
        comparison.add(took["ours"], took["raw"])
    assert counts["ours"] == counts["raw"], counts
    comparison.name = f"purge {counts['ours']:,} published rows vs ids + DELETE = ANY"
    comparison.count = counts["ours"]
    stmt = Comparison("purge: longest statement", unit="ms", target="< 500 ms")
    for o, base in zip(longest["ours"], longest["raw"], strict=True):
        stmt.add(o, base)
    stmt.verdict = stmt.ours.max < 0.5
    return [comparison, stmt]


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    table = include_outbox_table(MetaData(), TABLE)
    raw = await asyncpg.connect(plain_dsn(url))
    try:
        base_ms = await build(engine, table)
        store = OutboxStore(engine, table)
        print_header(
            f"outbox operations on {ROWS:,} rows (PostgreSQL)",
            "hand-written raw asyncpg on an open connection, same results (see docstring)",
        )
        lines = await bench_reads(store, raw)
        lines += await bench_replay(engine, store, raw, base_ms)
        lines += await bench_purge(engine, store, raw, base_ms)
    finally:
        await raw.close()
        await engine.dispose()
    print_table(lines, RUNS)
    print(f"(reads: {READ_RUNS} rounds)")
    missed = [c.name for c in lines if c.verdict is False]
    print("targets:", "met" if not missed else "MISSED: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
