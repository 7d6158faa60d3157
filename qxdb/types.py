"""Portable column types: one declaration, the native type on each dialect.

=================  ==========================  ======================
type               PostgreSQL                  SQLite
=================  ==========================  ======================
``UUIDType``       ``uuid``                    ``CHAR(32)``
``JSONType``       ``jsonb``                   ``JSON`` (text)
``UTCDateTime``    ``timestamp with time zone``  ``DATETIME`` (text)
=================  ==========================  ======================

``UTCDateTime`` refuses naive datetimes on the way in, stores UTC, and always hands back
timezone-aware UTC datetimes, with microseconds, on both dialects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator, Uuid
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["JSONType", "UTCDateTime", "UUIDType"]


def UUIDType() -> Uuid[Any]:
    return Uuid(as_uuid=True)


def JSONType() -> JSON:
    return JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that is UTC in storage and aware on every read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime takes a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: give it a timezone (e.g. UTC)"
            )
        value = value.astimezone(UTC)
        # SQLite stores text; keep it naive-in-UTC there so ordering by text is correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def __repr__(self) -> str:
        return "UTCDateTime()"
