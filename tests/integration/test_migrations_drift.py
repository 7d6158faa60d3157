"""Drift as ``qxdb migrate check`` reports it: none for qxdb's own types, words for the rest."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, String, Table

from qxdb.mapping import (
    jsonb_column,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid_column,
)
from qxdb.migrations.drift import describe, flatten


def _models(*, changed: bool) -> MetaData:
    metadata = make_metadata()
    Table(
        "orders",
        metadata,
        uuid_column("id", primary_key=True),
        Column("note", String(300 if changed else 200)),
        Column("qty", Integer, nullable=not changed),
        jsonb_column("data"),
        timestamp_column("placed_at"),
        *standard_audit_columns(),
    )
    if changed:
        Index("ix_orders_placed_at", metadata.tables["orders"].c.placed_at)
    return metadata


async def _differences(engine: Any, models: MetaData) -> list[str]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def compare(connection: Any) -> list[str]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs = flatten(compare_metadata(context, models))
        return sorted(describe(d, connection.dialect).message for d in diffs)

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_portable_types_show_no_drift_and_real_drift_reads_well(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_models(changed=False).create_all)

    assert await _differences(engine, _models(changed=False)) == []

    found = await _differences(engine, _models(changed=True))
    assert (
        "index ix_orders_placed_at on orders (placed_at) is in the models but not in the database"
        in found
    )
    assert "column orders.qty: NULL in the database, NOT NULL in the models" in found
    if engine.dialect.name == "postgresql":  # SQLite does not keep a VARCHAR's length
        assert (
            "column orders.note: type is VARCHAR(200) in the database, VARCHAR(300) in the models"
            in found
        )
