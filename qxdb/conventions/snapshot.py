"""One dialect-neutral picture of a table, built from a ``MetaData`` or from reflection.

Rules read only this picture, so each rule is written once and judges models and live
databases alike. Types are reduced to a *kind* (``uuid``, ``timestamp``, ``jsonb`` …) as
the dialect at hand sees them: a model is judged as PostgreSQL would store it (the
production dialect); a live database as its reflection reports it.

SQLite reflects types loosely, and the picture says so instead of guessing: a timestamp's
time zone is *unknown* there (``DATETIME`` holds either), and ``CHAR(32)`` is read as a
UUID, because that is how SQLAlchemy stores ``Uuid`` on SQLite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    CHAR,
    JSON,
    NCHAR,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Time,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

__all__ = [
    "ColumnInfo",
    "ForeignKeyInfo",
    "KeyInfo",
    "TableSnapshot",
    "TypeInfo",
    "describe_type",
    "normalize_where",
]

# Width of SQLAlchemy's Uuid on dialects without a native UUID type.
_SQLITE_UUID_LENGTH = 32


@dataclass(frozen=True, slots=True)
class TypeInfo:
    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    # None: the dialect cannot tell (SQLite); only meaningful for timestamps and times.
    timezone: bool | None = None
    # Kept to render a label lazily: rendering every type would dominate a large check.
    raw: Any = field(default=None, compare=False, repr=False)
    dialect: Dialect | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        """The type as the dialect spells it, e.g. ``TIMESTAMP WITHOUT TIME ZONE``."""
        if self.raw is None or self.dialect is None:
            return self.kind
        try:
            return str(self.raw.compile(dialect=self.dialect))
        except Exception:
            # Types a dialect cannot render (NullType, some decorators) still need a label.
            return self.kind

    def same_as(self, other: TypeInfo) -> bool:
        """Equal kind and size; time zones compared only where both sides know."""
        if (self.kind, self.length, self.precision, self.scale) != (
            other.kind,
            other.length,
            other.precision,
            other.scale,
        ):
            return False
        return self.timezone is None or other.timezone is None or self.timezone == other.timezone


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type: TypeInfo
    nullable: bool
    # Filled by a sequence: serial, identity, autoincrement, SQLite's rowid alias.
    serial: bool = False


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A primary key, unique constraint or index: anything with ordered columns."""

    kind: str  # "primary", "unique" or "index"
    name: str | None
    columns: tuple[str, ...]
    unique: bool
    where: str | None = None  # normalized partial-index predicate
    # Access method: a GIN and a btree index over the same column serve different queries.
    method: str = "btree"


@dataclass(frozen=True, slots=True)
class ForeignKeyInfo:
    name: str | None
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    ondelete: str | None


@dataclass(slots=True)
class TableSnapshot:
    name: str
    columns: dict[str, ColumnInfo]
    primary_key: KeyInfo | None
    uniques: list[KeyInfo]
    indexes: list[KeyInfo]
    foreign_keys: list[ForeignKeyInfo]
    check_names: list[str | None]
    is_outbox: bool = False
    # The columns of its PARTITION BY (PostgreSQL), empty for an ordinary table.
    partition_key: tuple[str, ...] = ()
    # rule id -> reason, from Table.info["qxdb_schema_ignore"] (models only).
    ignores: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[KeyInfo]:
        """Every ordered column set that an index backs: primary key, uniques, indexes."""
        head = [self.primary_key] if self.primary_key is not None else []
        return [*head, *self.uniques, *self.indexes]

    def leads(self, columns: tuple[str, ...] | set[str], *, full_only: bool = True) -> bool:
        """Is there an index whose leading columns are exactly ``columns`` (in any order)?"""
        wanted = set(columns)
        for key in self.keys:
            if full_only and key.where is not None:
                continue
            if set(key.columns[: len(wanted)]) == wanted:
                return True
        return False


def _resolve(type_: TypeEngine[Any], dialect: Dialect) -> TypeEngine[Any]:
    """The concrete type the dialect will use: variants picked, decorators unwrapped."""
    for _ in range(10):
        variants = getattr(type_, "_variant_mapping", None)
        if variants and dialect.name in variants:
            type_ = variants[dialect.name]
            continue
        if isinstance(type_, TypeDecorator):
            type_ = type_.load_dialect_impl(dialect)
            continue
        break
    return type_


def describe_type(type_: TypeEngine[Any], dialect: Dialect) -> TypeInfo:
    t = _resolve(type_, dialect)
    sqlite = dialect.name == "sqlite"
    display: dict[str, Any] = {"raw": t, "dialect": dialect}
    if isinstance(t, Uuid):
        return TypeInfo("uuid", **display)
    if isinstance(t, DateTime):
        return TypeInfo("timestamp", timezone=None if sqlite else bool(t.timezone), **display)
    if isinstance(t, JSONB):
        return TypeInfo("jsonb", **display)
    if isinstance(t, JSON):
        return TypeInfo("json", **display)
    if isinstance(t, CHAR | NCHAR):
        if sqlite and t.length == _SQLITE_UUID_LENGTH:
            return TypeInfo("uuid", **display)
        return TypeInfo("char", length=t.length, **display)
    if isinstance(t, Enum):
        return TypeInfo("enum", **display)
    if isinstance(t, Text):
        return TypeInfo("text", **display)
    if isinstance(t, String):
        return TypeInfo("varchar", length=t.length, **display)
    if isinstance(t, BigInteger):
        return TypeInfo("bigint", **display)
    if isinstance(t, SmallInteger):
        return TypeInfo("smallint", **display)
    if isinstance(t, Integer):
        return TypeInfo("integer", **display)
    if isinstance(t, Float):
        return TypeInfo("float", precision=t.precision, **display)
    if isinstance(t, Numeric):
        return TypeInfo("numeric", precision=t.precision, scale=t.scale, **display)
    if isinstance(t, Time):
        return TypeInfo("time", timezone=None if sqlite else bool(t.timezone), **display)
    for base, kind in _SIMPLE_KINDS:
        if isinstance(t, base):
            return TypeInfo(kind, **display)
    return TypeInfo(f"other:{type(t).__name__.lower()}", **display)


_SIMPLE_KINDS: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (Boolean, "boolean"),
    (Date, "date"),
    (Interval, "interval"),
    (LargeBinary, "binary"),
)


_WHERE_NOISE = re.compile(r"[\s()\"'`]+")


def normalize_where(where: Any) -> str | None:
    """A partial index predicate in a form that compares across dialects and sources."""
    if where is None:
        return None
    text = str(where).strip()
    if not text:
        return None
    return _WHERE_NOISE.sub("", text).lower()
