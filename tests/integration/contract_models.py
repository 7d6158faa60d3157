"""A table with a column of every common type, for the repository contract tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    CursorCodec,
    Entity,
    Repository,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid_column,
)
from qxdb.types import UUIDType

metadata = make_metadata()

things = Table(
    "contract_things",
    metadata,
    uuid_column("id", primary_key=True),
    Column("code", String(20), nullable=False, unique=True),
    Column("title", String(40), nullable=True),
    Column("body", Text, nullable=True),
    Column("small", SmallInteger, nullable=True),
    Column("score", Integer, nullable=True),
    Column("big", BigInteger, nullable=True),
    Column("amount", Numeric(12, 2), nullable=True),
    Column("ratio", Float, nullable=True),
    Column("flag", Boolean, nullable=True),
    Column("day", Date, nullable=True),
    timestamp_column("at", nullable=True),
    Column("ref", UUIDType(), nullable=True),
    Column("data", JSON, nullable=True),
    *standard_audit_columns(),
)

FIELDS = [
    "code",
    "title",
    "body",
    "small",
    "score",
    "big",
    "amount",
    "ratio",
    "flag",
    "day",
    "at",
    "ref",
    "data",
    "created_at",
]


@dataclass(kw_only=True, eq=False)
class Thing(Entity):
    code: str
    title: str | None = None
    body: str | None = None
    small: int | None = None
    score: int | None = None
    big: int | None = None
    amount: Decimal | None = None
    ratio: float | None = None
    flag: bool | None = None
    day: date | None = None
    at: datetime | None = None
    ref: UUID | None = None
    data: Any = None


class ThingRepository(Repository[Thing]):
    entity_cls = Thing
    table = things
    filterable_fields = set(FIELDS)
    sortable_fields = set(FIELDS) - {"data"}
    tenanted = True
    # Unsigned, as a service without QX_DB__CURSOR_SECRET has: the hostile case.
    cursor_codec = CursorCodec()


_created: set[str] = set()


async def ensure_tables(engine: AsyncEngine) -> None:
    """Create the table once per engine (hypothesis runs many examples on one database)."""
    # Keyed by URL: every test gets its own database (or SQLite file), hence its own URL.
    key = engine.url.render_as_string(hide_password=False)
    if key in _created:
        return
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    _created.add(key)
