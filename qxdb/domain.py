"""Domain primitives: ``Entity``, ``AggregateRoot`` and the two kinds of event.

Entities are plain dataclasses; SQLAlchemy never appears in a domain class. Mapping
happens beside them (see :mod:`qxdb.mapping`).

- A :class:`DomainEvent` is handled in-process, inside the transaction that raised it.
- An :class:`IntegrationEvent` leaves the service: the unit of work writes it to the outbox
  in the same transaction as the state change, and the relay publishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from qxdb.ids import utcnow, uuid7

__all__ = [
    "AggregateRoot",
    "DomainEvent",
    "Entity",
    "Event",
    "IntegrationEvent",
    "RecordGuard",
    "set_record_guard",
]

# Fields of an event that describe it rather than carry its data; envelope() keeps them
# out of the payload.
_META_FIELDS = frozenset(
    {
        "event_id",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "tenant_id",
        "actor_id",
        "aggregate_id",
        "ordering_key",
    }
)


class Event(BaseModel):
    """Base of domain and integration events; immutable once made."""

    model_config = ConfigDict(frozen=True)

    event_name: ClassVar[str] = ""
    event_version: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid7)
    # Aware only: a naive time would be refused by the outbox at commit, after the handlers ran.
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    tenant_id: UUID | None = None
    actor_id: UUID | None = None
    aggregate_id: UUID | None = None
    # Events with the same key are delivered in the order they were recorded; the
    # aggregate id when not given.
    ordering_key: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("event_name") and cls.__name__ not in (
            "DomainEvent",
            "IntegrationEvent",
        ):
            cls.event_name = cls.__name__

    def payload(self) -> dict[str, Any]:
        """The event's own data, JSON-ready."""
        return self.model_dump(mode="json", exclude=set(_META_FIELDS))

    def envelope(self) -> dict[str, Any]:
        """The whole event as a JSON-ready document: metadata plus ``payload``."""
        meta = self.model_dump(mode="json", include=set(_META_FIELDS))
        return {
            "event_id": meta["event_id"],
            "event_name": self.event_name,
            "event_version": self.event_version,
            "occurred_at": meta["occurred_at"],
            "correlation_id": meta["correlation_id"],
            "causation_id": meta["causation_id"],
            "tenant_id": meta["tenant_id"],
            "actor_id": meta["actor_id"],
            "aggregate_id": meta["aggregate_id"],
            "ordering_key": self.effective_ordering_key,
            "payload": self.payload(),
        }

    @property
    def effective_ordering_key(self) -> str | None:
        if self.ordering_key is not None:
            return self.ordering_key
        return str(self.aggregate_id) if self.aggregate_id is not None else None


class DomainEvent(Event):
    """Handled in-process, inside the unit of work's transaction."""


class IntegrationEvent(Event):
    """Published to other services through the transactional outbox."""


@dataclass(kw_only=True, eq=False)
class Entity:
    """Identity and audit fields shared by every persisted entity.

    Equality is identity of ``id``, as for any entity.
    """

    id: UUID = field(default_factory=uuid7)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    created_by: UUID | None = None
    updated_by: UUID | None = None
    deleted_by: UUID | None = None
    version: int = 1
    tenant_id: UUID | None = None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Entity) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self), self.id))

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


_EVENTS_ATTR = "_qxdb_pending_events"
# Set by the unit of work that tracks the aggregate (qxdb.uow): called before an event is
# recorded, so recording in a unit of work that can no longer write raises at once.
GUARD_ATTR = "_qxdb_record_guard"
RecordGuard = Callable[["AggregateRoot"], None]


def set_record_guard(aggregate: AggregateRoot, guard: RecordGuard | None) -> None:
    """Install (or remove, with None) the check ``record_event`` runs first."""
    object.__setattr__(aggregate, GUARD_ATTR, guard)


@dataclass(kw_only=True, eq=False)
class AggregateRoot(Entity):
    """An entity that records events for the unit of work to drain on commit.

    The pending list is created on first use rather than in ``__init__``: imperative
    mapping and our repositories may build instances without calling ``__init__``.
    """

    def _pending(self) -> list[Event]:
        events: list[Event] | None = self.__dict__.get(_EVENTS_ATTR)
        if events is None:
            events = []
            # object.__setattr__ keeps this out of SQLAlchemy's attribute instrumentation.
            object.__setattr__(self, _EVENTS_ATTR, events)
        return events

    def record_event(self, event: Event) -> None:
        guard: RecordGuard | None = self.__dict__.get(GUARD_ATTR)
        if guard is not None:
            guard(self)
        if event.aggregate_id is None:
            event = event.model_copy(update={"aggregate_id": self.id})
        self._pending().append(event)

    def pull_events(self) -> list[Event]:
        """Hand over the pending events in the order recorded, and forget them."""
        events = self._pending()
        drained = list(events)
        events.clear()
        return drained

    @property
    def has_pending_events(self) -> bool:
        return bool(self.__dict__.get(_EVENTS_ATTR))
