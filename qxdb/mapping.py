"""Imperative mapping helpers and the column conventions of qxdb.

Domain entities stay plain dataclasses; tables are declared with these helpers and mapped
(where a service wants ORM mapping at all) with ``make_registry().map_imperatively``.

The conventions, which ``qxdb schema check`` verifies:

- the primary key is one UUID column named ``id`` with a UUID v7 default;
- audit columns ``created_at``, ``updated_at`` (aware timestamps), ``created_by``,
  ``updated_by`` (UUID) and ``version`` (integer with a server default of 1);
- soft delete as ``deleted_at`` (indexed) with ``deleted_by``; ``tenant_id`` indexed;
- constraint and index names from one deterministic naming convention, so Alembic's
  autogenerate never sees a name change.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Column, Integer, MetaData, func
from sqlalchemy.orm import registry as sa_registry

from qxdb.ids import utcnow, uuid7
from qxdb.types import JSONType, UTCDateTime, UUIDType

__all__ = [
    "NAMING_CONVENTION",
    "jsonb_column",
    "make_metadata",
    "make_registry",
    "standard_audit_columns",
    "timestamp_column",
    "uuid_column",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata(schema: str | None = None) -> MetaData:
    """A ``MetaData`` with qxdb's deterministic naming convention."""
    return MetaData(schema=schema, naming_convention=dict(NAMING_CONVENTION))


def make_registry(metadata: MetaData | None = None) -> sa_registry:
    """A registry for imperative mapping over the given (or a new) metadata."""
    return sa_registry(metadata=metadata if metadata is not None else make_metadata())


def uuid_column(name: str = "id", *, primary_key: bool = False, **kwargs: Any) -> Column[UUID]:
    """A UUID column; a primary key gets a UUID v7 default (time-ordered, index-friendly)."""
    if primary_key:
        kwargs.setdefault("default", uuid7)
    return Column(name, UUIDType(), primary_key=primary_key, **kwargs)


def jsonb_column(name: str, **kwargs: Any) -> Column[Any]:
    """JSON data: ``jsonb`` on PostgreSQL, ``JSON`` on SQLite."""
    return Column(name, JSONType(), **kwargs)


def timestamp_column(name: str, **kwargs: Any) -> Column[Any]:
    """A timezone-aware UTC timestamp column."""
    return Column(name, UTCDateTime(), **kwargs)


def standard_audit_columns(
    *, include_tenant: bool = True, include_deletion: bool = True
) -> list[Column[Any]]:
    """The audit columns that mirror :class:`~qxdb.domain.Entity`.

    ::

        orders = Table("orders", metadata, uuid_column("id", primary_key=True),
                       Column("total", Numeric(12, 2), nullable=False), *standard_audit_columns())
    """
    cols: list[Column[Any]] = [
        Column(
            "created_at", UTCDateTime(), nullable=False, default=utcnow, server_default=func.now()
        ),
        Column("updated_at", UTCDateTime(), nullable=True),
        Column("created_by", UUIDType(), nullable=True),
        Column("updated_by", UUIDType(), nullable=True),
        Column("version", Integer, nullable=False, default=1, server_default="1"),
    ]
    if include_tenant:
        cols.append(Column("tenant_id", UUIDType(), nullable=True, index=True))
    if include_deletion:
        cols += [
            Column("deleted_at", UTCDateTime(), nullable=True, index=True),
            Column("deleted_by", UUIDType(), nullable=True),
        ]
    return cols
