"""What the outbox store hands back: rows, pages, statistics, plans and bulk-change reports.

Every value has ``to_dict()`` so the command can print it as JSON unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from qxdb.outbox.selection import row_status

__all__ = [
    "BulkChangeReport",
    "EventCounts",
    "FailureGroup",
    "FailureGroups",
    "OutboxPage",
    "OutboxRow",
    "OutboxStats",
    "PurgePlan",
    "ReplayPlan",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRow:
    """One outbox row with its derived ``status``."""

    id: UUID
    event_name: str
    event_version: int
    payload: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime | None
    correlation_id: UUID | None
    causation_id: UUID | None
    tenant_id: UUID | None
    published_at: datetime | None
    attempts: int
    last_error: str | None
    delivery_id: UUID | None
    ordering_key: str | None
    next_attempt_at: datetime | None
    locked_until: datetime | None
    locked_by: str | None
    dead_at: datetime | None
    replay_count: int = 0
    first_failed_at: datetime | None = None
    # Sent with the message (trace context): the row's whole state includes them. An
    # object as written by the recorder; a value written by hand is kept as it is.
    headers: Any = field(default_factory=dict)

    @property
    def status(self) -> str:
        return row_status(self.published_at, self.dead_at, self.last_error)

    @property
    def event_id(self) -> str | None:
        """The event's own id, from the envelope (replay never changes it)."""
        value = self.payload.get("event_id") if isinstance(self.payload, dict) else None
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass(frozen=True, slots=True)
class OutboxPage:
    """Rows in id order; pass ``next_after`` back as ``after`` for the next page."""

    rows: list[OutboxRow]
    next_after: UUID | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "next_after": None if self.next_after is None else str(self.next_after),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EventCounts:
    """Counts for one event name; ``published`` is None unless the statistics are exact."""

    event_name: str
    pending: int = 0
    failed: int = 0
    dead: int = 0
    published: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """Counts by status and by event name, and the lag.

    ``pending`` counts every undelivered row; ``failed`` is the part of it whose last
    attempt failed. ``lag_seconds`` is the age of the oldest pending row (by
    ``recorded_at``, on the database clock), 0 when nothing is pending.
    ``published_is_estimate`` says ``published`` (and ``total``) come from the planner's
    row estimate: on large PostgreSQL tables unless ``exact`` was asked for.
    """

    table: str
    measured_at: datetime
    total: int
    pending: int
    failed: int
    published: int
    dead: int
    oldest_pending_recorded_at: datetime | None
    lag_seconds: float
    published_is_estimate: bool
    exact: bool
    by_event: list[EventCounts] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayPlan:
    """What a replay would change: the matching rows and the first few of them."""

    selection: dict[str, Any]
    count: int
    sample: list[OutboxRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "count": self.count,
            "sample": [r.to_dict() for r in self.sample],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgePlan:
    """What a purge would delete: rows published (and, if asked, dead) before ``cutoff``."""

    cutoff: datetime
    include_dead: bool
    published: int
    dead: int

    @property
    def count(self) -> int:
        return self.published + self.dead

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "count": self.count}


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkChangeReport:
    """The outcome of a replay or purge, run as many short transactions."""

    operation: str
    rows: int
    batches: int
    seconds: float
    longest_statement_seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureGroup:
    """Failed or dead rows whose errors share a fingerprint (and, when grouped so, an event
    name or a tenant).

    ``first_failed_at`` is the earliest first failure of the group's rows (their
    ``first_failed_at``, else their ``dead_at``); ``last_failed_at`` the latest ``dead_at``
    (None for failed rows, which have not died yet). ``sample`` is the group's most
    recently recorded row.
    """

    fingerprint: str
    error_class: str | None
    error: str
    event_name: str | None
    tenant_id: UUID | None
    count: int
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    sample: OutboxRow | None

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "sample"}
        out["sample"] = None if self.sample is None else self.sample.to_dict()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureGroups:
    """The largest failure groups of a selection, largest first.

    ``rows`` counts every selected row, ``group_count`` every group, including those past
    the ``limit`` that ``groups`` was cut to.
    """

    selection: dict[str, Any]
    group_by: str
    rows: int
    group_count: int
    groups: list[FailureGroup]

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "group_by": self.group_by,
            "rows": self.rows,
            "group_count": self.group_count,
            "groups": [g.to_dict() for g in self.groups],
        }
