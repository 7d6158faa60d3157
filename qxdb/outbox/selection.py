"""Which outbox rows an operation is about: status, event name (exact or glob), tenant, window, ids.

Statuses (derived from the delivery columns, see :mod:`qxdb.outbox.table`):

==========  ======================================================================
pending     not delivered yet: ``published_at`` and ``dead_at`` NULL (includes failed)
failed      pending rows whose last attempt failed (``last_error`` set)
published   ``published_at`` set
dead        ``dead_at`` set (and not published): out of attempts, the relay gave up
all         every row
==========  ======================================================================

An event name with ``*`` or ``?`` is a glob (``orders.*``), matched case-sensitively on both
dialects: on PostgreSQL a ``LIKE`` pattern in which ``%``, ``_`` and the escape character
of the name itself are escaped; on SQLite (whose ``LIKE`` ignores ASCII case) a ``GLOB``
pattern in which ``[`` is escaped. Only ``*`` and ``?`` are wild. The occurred-at window is
half open: ``since <= occurred_at < until``; both ends must be convertible to UTC.

Ids go to the database as ONE bound parameter whatever their number (asyncpg allows
32,767 parameters a statement, SQLite 32,766): ``id = ANY(:ids)`` with a ``uuid[]`` on
PostgreSQL, ``id IN (SELECT value FROM json_each(:ids))`` with a JSON list of the stored
32-hex-digit texts on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

from sqlalchemy import Boolean, ColumnElement, String, Table, TypeDecorator, and_, bindparam, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from qxdb.errors import ValidationError
from qxdb.outbox.fingerprint import validate_fingerprint
from qxdb.outbox.table import pending_clause
from qxdb.outbox.triage import group_of
from qxdb.types import UTCDateTime
from qxdb.values import check_value, is_unicode

__all__ = [
    "OUTBOX_STATUSES",
    "OutboxSelection",
    "OutboxStatus",
    "glob_to_like",
    "glob_to_sqlite_glob",
    "row_status",
]

OutboxStatus = Literal["pending", "failed", "published", "dead", "all"]
OUTBOX_STATUSES: tuple[str, ...] = get_args(OutboxStatus)
_ESCAPE = "\\"


def glob_to_like(pattern: str) -> str:
    """``orders.*`` -> ``orders.%``; ``%``, ``_`` and ``\\`` in the name match only themselves."""
    out = []
    for char in pattern:
        if char in (_ESCAPE, "%", "_"):
            out.append(_ESCAPE + char)
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(char)
    return "".join(out)


def glob_to_sqlite_glob(pattern: str) -> str:
    """``orders.*`` as an SQLite ``GLOB`` pattern: only ``*`` and ``?`` wild, ``[`` literal."""
    return pattern.replace("[", "[[]")


class _GlobPattern(TypeDecorator[str]):
    """A user's glob, bound as the pattern the dialect's operator takes (see
    :class:`_EventGlob`)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return glob_to_sqlite_glob(value)
        return glob_to_like(value)


class _IdList(TypeDecorator[Any]):
    """A list of UUIDs bound as one parameter: ``uuid[]`` on PostgreSQL, a JSON list of
    the stored texts (32 hex digits, as :func:`qxdb.types.UUIDType` stores them) elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(postgresql.UUID(as_uuid=True)))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps([u.hex for u in value])


class _EventGlob(ColumnElement[bool]):
    """``column`` matches a glob, case-sensitively on every dialect."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("pattern", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], glob: str) -> None:
        self.column = column
        self.pattern = bindparam(None, glob, type_=_GlobPattern())


class _IdsIn(ColumnElement[bool]):
    """``column`` is one of ``ids``, as one bound parameter (see the module docstring)."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], ids: tuple[UUID, ...]) -> None:
        self.column = column
        self.ids = bindparam(None, list(ids), type_=_IdList())


@compiles(_EventGlob)
def _like(element: _EventGlob, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(element.pattern, **kw)
    return f"{column} LIKE {pattern} ESCAPE '{_ESCAPE}'"


@compiles(_EventGlob, "sqlite")
def _glob(element: _EventGlob, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} GLOB {compiler.process(element.pattern, **kw)}"


@compiles(_IdsIn)
def _ids_json(element: _IdsIn, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    ids = compiler.process(element.ids, **kw)
    # Both parts are compiled SQL (a column and a bound parameter), never values.
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608


@compiles(_IdsIn, "postgresql")
def _ids_array(element: _IdsIn, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY({compiler.process(element.ids, **kw)})"


def row_status(published_at: Any, dead_at: Any, last_error: Any) -> str:
    """The status of one row, the most specific that applies."""
    if published_at is not None:
        return "published"
    if dead_at is not None:
        return "dead"
    return "failed" if last_error is not None else "pending"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSelection:
    """A set of outbox rows; every criterion given must hold (AND)."""

    status: OutboxStatus = "all"
    event: str | None = None
    tenant_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[UUID, ...] = ()
    # A failure group (fingerprint of last_error, see qxdb.outbox.fingerprint).
    error_group: str | None = None
    # Only rows recorded without a tenant (``--tenant none``); excludes ``tenant_id``.
    no_tenant: bool = False

    def __post_init__(self) -> None:
        # Every value is checked here, before any SQL: a wrong type or a text the database
        # cannot store (NUL, a lone surrogate) is the caller's ValidationError, never a
        # driver error.
        if not isinstance(self.status, str) or self.status not in OUTBOX_STATUSES:
            raise ValidationError(
                f"unknown outbox status {self.status!r}: use one of {', '.join(OUTBOX_STATUSES)}"
            )
        if self.event is not None:
            if not isinstance(self.event, str):
                raise ValidationError(f"event must be a string, got {type(self.event).__name__}")
            if not self.event.strip():
                raise ValidationError("event name is empty: give a name or a glob such as orders.*")
            if "\x00" in self.event or not self.event.isprintable() or not is_unicode(self.event):
                raise ValidationError(
                    f"event name {self.event!r} holds characters no event name has"
                )
        if self.tenant_id is not None and not isinstance(self.tenant_id, UUID):
            raise ValidationError(f"tenant_id must be a UUID, got {type(self.tenant_id).__name__}")
        if not isinstance(self.no_tenant, bool):
            raise ValidationError(f"no_tenant must be a bool, got {type(self.no_tenant).__name__}")
        if self.no_tenant and self.tenant_id is not None:
            raise ValidationError("give a tenant or no tenant, not both")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}")
            if value is not None:
                # The column's own check (timezone-aware, convertible to UTC): the bounds of
                # datetime near year 1 or 9999 are a ValidationError, not an OverflowError.
                try:
                    check_value(UTCDateTime(), value)
                except ValidationError as exc:
                    raise ValidationError(f"{name}: {exc}") from None
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationError(
                f"empty window: since ({self.since.isoformat()}) is not before "
                f"until ({self.until.isoformat()})"
            )
        if isinstance(self.ids, str | bytes) or not isinstance(self.ids, Iterable):
            raise ValidationError(f"ids must be UUIDs, got {type(self.ids).__name__}")
        ids = tuple(self.ids)
        if not all(isinstance(i, UUID) for i in ids):
            raise ValidationError("ids must be UUIDs")
        object.__setattr__(self, "ids", ids)
        if self.error_group is not None:
            object.__setattr__(self, "error_group", validate_fingerprint(self.error_group))

    @classmethod
    def of_ids(cls, ids: Iterable[UUID]) -> OutboxSelection:
        return cls(ids=tuple(ids))

    def where(self, table: Table) -> ColumnElement[bool]:
        """The SQL condition for ``table`` (values bound, never pasted)."""
        c = table.c
        parts: list[ColumnElement[bool]] = []
        undelivered = pending_clause(table)
        if self.status == "pending":
            parts.append(undelivered)
        elif self.status == "failed":
            parts.extend((undelivered, c.last_error.is_not(None)))
        elif self.status == "published":
            parts.append(c.published_at.is_not(None))
        elif self.status == "dead":
            parts.extend((c.dead_at.is_not(None), c.published_at.is_(None)))
        if self.event is not None:
            if "*" in self.event or "?" in self.event:
                parts.append(_EventGlob(c.event_name, self.event))
            else:
                parts.append(c.event_name == self.event)
        if self.tenant_id is not None:
            parts.append(c.tenant_id == self.tenant_id)
        if self.no_tenant:
            parts.append(c.tenant_id.is_(None))
        if self.since is not None:
            parts.append(c.occurred_at >= self.since)
        if self.until is not None:
            parts.append(c.occurred_at < self.until)
        if self.ids:
            parts.append(_IdsIn(c.id, self.ids))
        if self.error_group is not None:
            parts.append(group_of(table) == self.error_group)
        return and_(*parts) if parts else true()

    def describe(self) -> dict[str, Any]:
        """The criteria that are set, for reports and ``--json`` output."""
        out: dict[str, Any] = {"status": self.status}
        if self.event is not None:
            out["event"] = self.event
        if self.tenant_id is not None:
            out["tenant_id"] = str(self.tenant_id)
        if self.no_tenant:
            out["tenant_id"] = None
        if self.since is not None:
            out["since"] = self.since.isoformat()
        if self.until is not None:
            out["until"] = self.until.isoformat()
        if self.ids:
            out["ids"] = [str(i) for i in self.ids]
        if self.error_group is not None:
            out["group"] = self.error_group
        return out
