"""``qxdb schema check`` on 500 tables: the model, and the same tables in PostgreSQL.

Run: ``python benchmarks/schema_check.py [--quick]`` (the live part uses
``QXDB_BENCH_DATABASE_URL`` or a ``qxdb_bench_schema`` database on the local server,
created if missing; pass ``--no-live`` to skip it). The tables are built only with qxdb's helpers (UUID keys, audit
and soft-delete columns, JSONB, foreign keys with indexes) plus one outbox, so the check
must come out clean.

Target: checking the generated metadata of 500 tables takes under 1 s. Baselines, timed
interleaved with ours round by round (benchmarks/_common.py): building that metadata
(model: a scale reference), and SQLAlchemy's own ``MetaData.reflect()`` of the same
database (live: the reading any check of a live schema needs; the rules come on top).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from _common import Comparison, Sample, ensure_database, print_header, print_table, rounds, run_sync
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Numeric, String, Table, text

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
RUNS = rounds(5, 3)
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


def model() -> Comparison:
    md = build_metadata()
    report = check_metadata(md)
    assert len(report.tables) == TABLES, len(report.tables)
    assert not report.findings, report.findings[:3]
    ours, base = run_sync([lambda: check_metadata(md), build_metadata], RUNS)
    line = Comparison(
        f"check_metadata, {TABLES} tables, {len(report.rules)} rules vs building them",
        ours=Sample(ours),
        base=Sample(base),
        target="median < 1 s, 0 findings",
    )
    line.verdict = line.ours.median < 1.0 and not report.findings
    return line


async def live(url: str) -> Comparison:
    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    config = SchemaConfig(outbox_tables=("qx_outbox_events",))
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

            def measure(sync: Any) -> tuple[list[list[float]], Any]:
                report = check_connection(sync, config)
                sides = [lambda: check_connection(sync, config), lambda: MetaData().reflect(sync)]
                return run_sync(sides, RUNS), report

            (ours, base), report = await conn.run_sync(measure)
    finally:
        await engine.dispose()
    line = Comparison(
        f"check_connection (live PostgreSQL, {len(report.tables)} tables) vs reflect()",
        ours=Sample(ours),
        base=Sample(base),
        target="0 findings",
    )
    line.verdict = not report.findings
    return line


def main() -> int:
    print_header(
        f"schema check on {TABLES} tables",
        "building the metadata (model) and SQLAlchemy's MetaData.reflect() (live)",
    )
    lines = [model()]
    if "--no-live" not in sys.argv:
        lines.append(asyncio.run(live(os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL))))
    print_table(lines, RUNS)
    missed = [c.name for c in lines if c.verdict is False]
    print("targets:", "met" if not missed else "MISSED: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
