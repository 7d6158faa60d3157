"""Portable columns round-trip exactly on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Column, Numeric, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    jsonb_column,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid7,
    uuid_column,
)


def _table() -> Table:
    md = make_metadata()
    return Table(
        "things",
        md,
        uuid_column("id", primary_key=True),
        Column("name", String(50)),
        Column("price", Numeric(12, 4)),
        timestamp_column("happened_at"),
        jsonb_column("data"),
        *standard_audit_columns(),
    )


async def test_uuid_json_and_aware_datetimes_round_trip(engine: AsyncEngine) -> None:
    table = _table()
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    moment = datetime(
        2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    doc: dict[str, Any] = {"a": [1, 2, {"b": None}], "s": "é", "n": 1.5}
    row_id = uuid7()
    async with engine.begin() as conn:
        await conn.execute(
            insert(table).values(
                id=row_id, name="x", price=Decimal("12.3456"), happened_at=moment, data=doc
            )
        )
    async with engine.connect() as conn:
        row = (await conn.execute(select(table))).mappings().one()
    assert isinstance(row["id"], UUID)
    assert row["id"] == row_id
    assert row["data"] == doc
    assert row["happened_at"] == moment
    assert row["happened_at"].utcoffset() == timedelta(0)
    assert row["happened_at"].microsecond == 123456
    assert row["created_at"].tzinfo is not None  # client default, aware
    assert row["version"] == 1


async def test_server_defaults_fill_version_and_created_at(engine: AsyncEngine) -> None:
    table = _table()
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        # Bypass the client-side defaults, as another writer (or plain SQL) would.
        await conn.exec_driver_sql(
            "INSERT INTO things (id, name) VALUES ('0190a3b4c5d67e8f90a1b2c3d4e5f601', 'raw')"
            if engine.dialect.name == "sqlite"
            else "INSERT INTO things (id, name) VALUES ('0190a3b4-c5d6-7e8f-90a1-b2c3d4e5f601', 'raw')"
        )
        row = (await conn.execute(select(table))).mappings().one()
    assert row["version"] == 1
    assert row["created_at"].tzinfo is not None
    assert abs(row["created_at"] - datetime.now(UTC)) < timedelta(minutes=5)


async def test_naive_datetime_is_refused(engine: AsyncEngine) -> None:
    table = _table()
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    with pytest.raises(Exception, match="naive datetime"):
        async with engine.begin() as conn:
            await conn.execute(insert(table).values(id=uuid7(), happened_at=datetime(2024, 1, 1)))
