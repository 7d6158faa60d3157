"""Dead-letter triage on 100,000 dead rows with 5 failure classes (issue 21).

Run: ``python benchmarks/outbox_triage.py [--quick]`` (PostgreSQL; ``QXDB_BENCH_DATABASE_URL``
or a ``qxdb_bench_triage`` database on the local server, created if missing). The table is
built once with ``INSERT … SELECT generate_series`` (100,000 dead rows whose errors carry
varying UUIDs, numbers, hex ids and quoted subjects, plus 100,000 published rows) and
reused by later runs.

Ours: ``OutboxStore.failure_groups()`` on an engine already connected: it groups by the
``error_group`` column that PostgreSQL generates from ``last_error`` when the error is
written, then reads one sample row per group. (Running the same regular expressions at
query time instead took about 4 s median here at load 9-10: why the column exists.) Baselines, interleaved, >= 3 rounds (benchmarks/_common.py):

* *python*: what a user would write without it: raw asyncpg fetches every dead row's
  ``last_error`` (one query, one connection already open) and groups them in Python with
  the same :func:`qxdb.outbox.fingerprint.error_fingerprint`.
* *floor*: raw asyncpg ``SELECT event_name, count(*) … GROUP BY event_name`` over the same
  dead rows: the cost of reading them at all; the ratio is the price of the regular
  expressions.

Every round checks the answer: exactly 5 groups with the exact seeded counts. Target: ours
under 1 s (median).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter

import asyncpg
from _common import (
    Comparison,
    ensure_database,
    plain_dsn,
    print_header,
    print_table,
    quick,
    rounds,
    run_async,
)
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateTable

from qxdb.engine import create_engine
from qxdb.outbox.fingerprint import error_fingerprint
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings

DEAD = 20_000 if quick() else 100_000
PUBLISHED = 100_000
TABLE = "bench_triage_events"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_triage"
RUNS = rounds(5)

# Class of dead row g by g % 10: 0-3 timeout, 4-5 rejected, 6-7 too large, 8 key, 9 refused.
ERROR_SQL = """
CASE
  WHEN g % 10 < 4 THEN 'TimeoutError: no ack for ' || md5('u' || g)::uuid || ' after '
      || (g % 30) || '.5 s'
  WHEN g % 10 < 6 THEN 'RejectedError: subject ''orders.' || g || ''' not bound (code '
      || (400 + g % 3) || ')'
  WHEN g % 10 < 8 THEN 'ValueError: payload of ' || (1000 + g) || ' bytes > max_payload "'
      || (g % 7) || 'k"'
  WHEN g % 10 = 8 THEN 'KeyError: ''ord_' || to_hex(g * 7919) || ''''
  ELSE 'ConnectionRefusedError: [Errno 111] connect to 10.0.' || (g % 255) || '.7:4222 refused'
END
"""
ROW_SQL = """
INSERT INTO {table} (id, event_name, payload, occurred_at, recorded_at, delivery_id,
    published_at, attempts, last_error, dead_at, tenant_id)
SELECT md5('i' || g)::uuid, 'bench.event_' || (g % 20), jsonb_build_object('n', g),
    now() - interval '1 day' + g * interval '1 ms', now() - interval '1 day',
    md5('d' || g)::uuid,
    CASE WHEN g > {dead} THEN now() END,
    10,
    CASE WHEN g <= {dead} THEN {error} END,
    CASE WHEN g <= {dead} THEN now() - interval '1 hour' + g * interval '1 ms' END,
    md5('t' || (g % 50))::uuid
FROM generate_series(1, {rows}) AS g
"""


def expected_counts() -> list[int]:
    """The seeded class sizes, largest first (class by g % 10, as in ERROR_SQL)."""
    sizes = Counter(
        0 if r < 4 else 1 if r < 6 else 2 if r < 8 else 3 if r == 8 else 4
        for r in (g % 10 for g in range(1, DEAD + 1))
    )
    return sorted(sizes.values(), reverse=True)


async def build(engine: AsyncEngine) -> None:
    table = include_outbox_table(MetaData(), TABLE)
    marker = f"qxdb bench triage v2 {DEAD} {PUBLISHED}"
    async with engine.begin() as conn:
        found = (
            await conn.execute(
                text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": TABLE}
            )
        ).scalar()
    if found == marker:
        print(f"reusing {TABLE}")
        return
    print(f"building {TABLE}: {DEAD:,} dead and {PUBLISHED:,} published rows …", flush=True)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: table.drop(c, checkfirst=True))
        await conn.execute(CreateTable(table))
        sql = ROW_SQL.format(table=TABLE, dead=DEAD, rows=DEAD + PUBLISHED, error=ERROR_SQL)
        await conn.execute(text(sql))
        for index in table.indexes:
            await conn.run_sync(index.create)
        await conn.execute(text(f"COMMENT ON TABLE {TABLE} IS '{marker}'"))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"VACUUM ANALYZE {TABLE}"))
    print(f"built in {time.perf_counter() - started:.1f} s")


async def main() -> None:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    print_header(
        f"outbox triage: {DEAD:,} dead rows, 5 failure classes",
        "raw asyncpg: fetch every error and group in Python (python); GROUP BY event_name (floor)",
    )
    try:
        await build(engine)
        store = OutboxStore(engine, TABLE)
        raw = await asyncpg.connect(plain_dsn(url))
        want = expected_counts()
        await store.failure_groups()  # warm: connection, table check, statement cache

        async def ours() -> None:
            report = await store.failure_groups()
            got = [g.count for g in report.groups]
            assert got == want and report.group_count == 5, (got, want)

        async def python_side() -> None:
            rows = await raw.fetch(
                f"SELECT last_error FROM {TABLE} WHERE dead_at IS NOT NULL AND published_at IS NULL"
            )
            groups = Counter(error_fingerprint(r[0]) for r in rows)
            assert sorted(groups.values(), reverse=True) == want

        async def floor() -> None:
            rows = await raw.fetch(
                f"SELECT event_name, count(*) FROM {TABLE} "
                "WHERE dead_at IS NOT NULL AND published_at IS NULL GROUP BY event_name"
            )
            assert sum(r[1] for r in rows) == DEAD

        times = await run_async([ours, python_side, floor], RUNS)
        lines = []
        for name, base in (("vs python grouping", times[1]), ("vs GROUP BY event_name", times[2])):
            comparison = Comparison(
                f"failure_groups() {name}", count=DEAD, target="ours < 1 s median"
            )
            for o, b in zip(times[0], base, strict=True):
                comparison.add(o, b)
            comparison.verdict = comparison.ours.median < 1.0
            lines.append(comparison)
        print_table(lines, RUNS)
        print(f"checks: every round 5 groups with exact counts {want}")
        await raw.close()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
