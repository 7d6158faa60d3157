"""Which outbox rows an operation is about: status, event name (exact or glob), tenant, window, ids.

Statuses (derived from the delivery columns, see :mod:`qxdb.outbox.table`):

==========  ======================================================================
pending     not delivered yet: ``published_at`` and ``dead_at`` NULL (includes failed)
failed      pending rows whose last attempt failed (``last_error`` set)
published   ``published_at`` set
dead        ``dead_at`` set (and not published): out of attempts, the relay gave up
all         every row
==========  ======================================================================

An event name with ``*`` or ``?`` is a glob (``orders.*``): it becomes a ``LIKE`` pattern in
which ``%``, ``_`` and the escape character of the name itself are escaped, so only the
glob characters are wild. The occurred-at window is half open: ``since <= occurred_at <
until``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

from sqlalchemy import ColumnElement, Table, and_, true

from qxdb.errors import ValidationError
from qxdb.outbox.fingerprint import validate_fingerprint
from qxdb.outbox.table import pending_clause
from qxdb.outbox.triage import group_of

__all__ = ["OUTBOX_STATUSES", "OutboxSelection", "OutboxStatus", "glob_to_like", "row_status"]

OutboxStatus = Literal["pending", "failed", "published", "dead", "all"]
OUTBOX_STATUSES: tuple[str, ...] = get_args(OutboxStatus)
_ESCAPE = "\\"


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return True
    return False


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
            if "\x00" in self.event or not self.event.isprintable() or _unencodable(self.event):
                raise ValidationError(
                    f"event name {self.event!r} holds characters no event name has"
                )
        if self.tenant_id is not None and not isinstance(self.tenant_id, UUID):
            raise ValidationError(f"tenant_id must be a UUID, got {type(self.tenant_id).__name__}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}")
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValidationError(f"{name} must be timezone-aware, got {value.isoformat()}")
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
                parts.append(c.event_name.like(glob_to_like(self.event), escape=_ESCAPE))
            else:
                parts.append(c.event_name == self.event)
        if self.tenant_id is not None:
            parts.append(c.tenant_id == self.tenant_id)
        if self.since is not None:
            parts.append(c.occurred_at >= self.since)
        if self.until is not None:
            parts.append(c.occurred_at < self.until)
        if self.ids:
            parts.append(c.id.in_(self.ids))
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
        if self.since is not None:
            out["since"] = self.since.isoformat()
        if self.until is not None:
            out["until"] = self.until.isoformat()
        if self.ids:
            out["ids"] = [str(i) for i in self.ids]
        if self.error_group is not None:
            out["group"] = self.error_group
        return out
