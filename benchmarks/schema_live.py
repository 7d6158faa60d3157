"""``qxdb schema check --database`` on a live PostgreSQL of 500 tables, health rules included.

Run: ``python benchmarks/schema_live.py`` (uses ``QXDB_BENCH_DATABASE_URL`` or a
``qxdb_bench_schema_live`` database on the local server, created if missing and filled
once). The 500 tables are built with qxdb's helpers (UUID keys, audit columns, a foreign
key and its index each, a unique code) and hold a few rows each, so every catalog query
of the health rules has real rows to read (indexes, sequences, statistics).

Target: the whole live check -- reflection, the catalog queries of the health rules and
every rule -- under 2 s for 500 tables. Measured in the same run, interleaved, 5 rounds:

* baseline: SQLAlchemy's own ``MetaData.reflect()`` of the same schema;
* the check with the convention rules only (``--ignore`` of every health rule);
* the full check (all 25 rules): the figure the target is about.

Prints min / median / max of each and the ratios of the medians.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Connection, make_url

from qxdb.conventions import RULES, SchemaConfig, check_connection
from qxdb.mapping import make_metadata, standard_audit_columns, uuid_column
from qxdb.types import UUIDType

TABLES = 500
ROUNDS = 5
TARGET_S = 2.0
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_schema_live"
HEALTH = [r.id for r in RULES.values() if r.sources == {"postgresql"}]


def build_metadata() -> MetaData:
    md = make_metadata()
    for n in range(TABLES):
        parent = (
            [Column("parent_id", UUIDType(), ForeignKey(f"t{n - 1:04d}.id", ondelete="CASCADE"),
                    index=True)]
            if n else []
        )  # fmt: skip
        Table(
            f"t{n:04d}",
            md,
            uuid_column("id", primary_key=True),
            *parent,
            Column("code", String(40), nullable=False, unique=True),
            Column("quantity", Integer, nullable=False),
            *standard_audit_columns(),
        )
    return md


def stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"min {ms[0]:7.1f}  median {statistics.median(ms):7.1f}  max {ms[-1]:7.1f} ms"


async def _ensure_database(url: str) -> None:
    import asyncpg

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(admin)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database):
            # CREATE DATABASE takes no parameters; quote the identifier ourselves.
            await conn.execute(
                'CREATE DATABASE "{}"'.format(str(parsed.database).replace('"', '""'))
            )
    finally:
        await conn.close()


def _fill(sync: Connection) -> None:
    count = sync.execute(
        text("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
    ).scalar_one()
    if count == TABLES:
        return
    md = build_metadata()
    md.drop_all(sync)
    md.create_all(sync)
    for table in md.sorted_tables:
        sync.execute(
            text(
                f"INSERT INTO {table.name} (id, code, quantity, created_at, version) "
                "SELECT gen_random_uuid(), 'c' || g, g, now(), 1 FROM generate_series(1, 20) g"
            )
        )
    sync.execute(text("ANALYZE"))


async def main_async(url: str) -> bool:
    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    await _ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_fill)
        async with engine.connect() as conn:

            def measure(sync: Connection) -> dict[str, Any]:
                conventions_only = SchemaConfig().with_flags(ignore=HEALTH)
                cases: dict[str, Callable[[], Any]] = {
                    "baseline: MetaData.reflect()": lambda: MetaData().reflect(sync),
                    "check, convention rules only": lambda: check_connection(
                        sync, conventions_only
                    ),
                    "check, all rules (target)": lambda: check_connection(sync),
                }
                samples: dict[str, list[float]] = {name: [] for name in cases}
                results: dict[str, Any] = {}
                for _ in range(ROUNDS):  # interleaved: load drifts hit every case alike
                    for name, fn in cases.items():
                        start = time.perf_counter()
                        results[name] = fn()
                        samples[name].append(time.perf_counter() - start)
                return {"samples": samples, "report": results["check, all rules (target)"]}

            measured = await conn.run_sync(measure)
    finally:
        await engine.dispose()
    samples: dict[str, list[float]] = measured["samples"]
    report = measured["report"]
    print(
        f"live PostgreSQL: {len(report.tables)} tables, {len(report.rules)} rules, {ROUNDS} rounds"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = statistics.median(samples["baseline: MetaData.reflect()"])
    for name, values in samples.items():
        ratio = statistics.median(values) / base
        print(f"  {name:<30} {stats(values)}   {ratio:.2f}x the baseline")
    full = statistics.median(samples["check, all rules (target)"])
    print(f"  findings: {len(report.findings)} ({len(report.errors)} errors)")
    ok = full < TARGET_S
    print(f"  target: full live check of {TABLES} tables < {TARGET_S:.0f} s: "
          f"{'met' if ok else 'MISSED'} ({full:.2f} s median)")  # fmt: skip
    return ok


def main() -> int:
    return (
        0 if asyncio.run(main_async(os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL))) else 1
    )


if __name__ == "__main__":
    sys.exit(main())
