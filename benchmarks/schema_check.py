"""``qxdb schema check`` on 500 tables: the model, and the same tables in PostgreSQL.

Run: ``python benchmarks/schema_check.py`` (the live part uses ``QXDB_BENCH_DATABASE_URL``
or a ``qxdb_bench_schema`` database on the local server, created if missing; pass
``--no-live`` to skip it). The tables are built only with qxdb's helpers (UUID keys, audit
and soft-delete columns, JSONB, foreign keys with indexes) plus one outbox, so the check
must come out clean.

Target: checking the generated metadata of 500 tables takes under 1 s. Baselines measured
in the same run: building that metadata (model), and SQLAlchemy's own
``MetaData.reflect()`` of the same database (live).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Numeric, String, Table, text
from sqlalchemy.engine import make_url

from qxdb.conventions import SchemaConfig, check_connection, check_metadata
from qxdb.mapping import (
    jsonb_column,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid_column,
)
from qxdb.outbox.table import include_outbox_table
from qxdb.types import UUIDType

TABLES = 500
RUNS = 5
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_schema"


def build_metadata(tables: int = TABLES) -> MetaData:
    md = make_metadata()
    for n in range(tables - 1):
        parent = [
            Column(
                "parent_id",
                UUIDType(),
                ForeignKey(f"entity_{n - 1:04d}.id", ondelete="CASCADE"),
                index=True,
            )
        ] if n else []  # fmt: skip
        Table(
            f"entity_{n:04d}",
            md,
            uuid_column("id", primary_key=True),
            *parent,
            Column("name", String(200), nullable=False),
            Column("code", String(40), nullable=False, unique=True),
            Column("quantity", Integer, nullable=False),
            Column("amount", Numeric(12, 2)),
            timestamp_column("happened_at"),
            jsonb_column("attributes"),
            *standard_audit_columns(),
        )
    include_outbox_table(md)
    return md


def timed(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, Any]:
    """Median wall time of ``runs`` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def model() -> bool:
    build_s, md = timed(build_metadata)
    check_s, report = timed(lambda: check_metadata(md))
    assert len(report.tables) == TABLES, len(report.tables)
    print(f"model: {TABLES} tables, {sum(len(t.columns) for t in md.tables.values())} columns")
    print(f"  baseline: build the metadata        {build_s * 1000:8.1f} ms")
    print(
        f"  check_metadata (all {len(report.rules)} rules)  {check_s * 1000:8.1f} ms"
        f"   {check_s / TABLES * 1e6:.0f} us/table   {check_s / build_s:.2f}x the build"
    )
    print(f"  findings: {len(report.findings)} (expected 0)")
    ok = check_s < 1.0 and not report.findings
    print(f"  target < 1 s: {'met' if ok else 'MISSED'}")
    return ok


async def live(url: str) -> None:
    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    await _ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    try:
        async with engine.begin() as conn:
            count = (
                await conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalar_one()
            if count != TABLES:
                await conn.run_sync(build_metadata().drop_all)
                await conn.run_sync(build_metadata().create_all)

        async with engine.connect() as conn:

            def reflect(sync: Any) -> tuple[float, float, Any]:
                reflect_s, _ = timed(lambda: MetaData().reflect(sync), runs=3)
                check_s, report = timed(lambda: check_connection(sync, SchemaConfig(
                    outbox_tables=("qx_outbox_events",))), runs=3)  # fmt: skip
                return reflect_s, check_s, report

            reflect_s, check_s, report = await conn.run_sync(reflect)
    finally:
        await engine.dispose()
    print(f"live PostgreSQL: {len(report.tables)} tables")
    print(f"  baseline: MetaData.reflect()        {reflect_s * 1000:8.1f} ms")
    print(
        f"  check_connection (reflect + rules) {check_s * 1000:8.1f} ms"
        f"   {check_s / TABLES * 1e6:.0f} us/table   {check_s / reflect_s:.2f}x the baseline"
    )
    print(f"  findings: {len(report.findings)} (expected 0)")


async def _ensure_database(url: str) -> None:
    import asyncpg

    parsed = make_url(url)
    name = parsed.database
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # CREATE DATABASE takes no parameters; quote the identifier ourselves.
            await conn.execute('CREATE DATABASE "{}"'.format(str(name).replace('"', '""')))
    finally:
        await conn.close()


def main() -> int:
    ok = model()
    if "--no-live" not in sys.argv:
        asyncio.run(live(os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
