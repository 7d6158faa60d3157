"""Writes integration events to the outbox inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from qxdb.domain import Event
from qxdb.ids import uuid7
from qxdb.outbox.table import outbox_table

__all__ = ["DefaultOutboxRecorder", "OutboxRecorder", "notify_channel", "outbox_row"]


@runtime_checkable
class OutboxRecorder(Protocol):
    """What the unit of work needs to persist integration events."""

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None: ...


def outbox_row(event: Event) -> dict[str, Any]:
    """The outbox row for one event (ids are fresh UUID v7s)."""
    return {
        "id": uuid7(),
        "event_name": event.event_name,
        "event_version": event.event_version,
        "payload": event.envelope(),
        "occurred_at": event.occurred_at,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "tenant_id": event.tenant_id,
        "delivery_id": uuid7(),
        "ordering_key": event.effective_ordering_key,
    }


def notify_channel(table: Table | str) -> str:
    """The PostgreSQL NOTIFY channel that announces new rows of an outbox table.

    It is the table's name: one channel per outbox, so relays of different outboxes in
    one database do not wake each other.
    """
    return table.name if isinstance(table, Table) else table


class DefaultOutboxRecorder:
    """Inserts every event of one commit with one multi-row ``INSERT`` statement.

    The statement is built from a ``Table`` object, so the table name is quoted by
    SQLAlchemy and never pasted into SQL text.

    On PostgreSQL it also sends ``pg_notify(<table name>, '')`` in the same transaction,
    so a listening relay wakes the moment the rows commit (and never earlier: PostgreSQL
    delivers a notification only at commit, and drops it on rollback). The channel is a
    bound parameter, not SQL text.
    """

    def __init__(self, table: Table | str | None = None) -> None:
        # None: the configured table (QX_DB__OUTBOX_TABLE), the one the relay reads.
        self.table = table if isinstance(table, Table) else outbox_table(table)
        # Executed with a list of rows, this one statement is compiled once and sent as
        # one multi-row INSERT (SQLAlchemy's "insertmanyvalues", which RETURNING enables);
        # `.values(rows)` would recompile a statement of events x columns binds per commit.
        self._insert = insert(self.table).returning(self.table.c.id)

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if not events:
            return
        rows = [outbox_row(ev) for ev in events]
        await session.execute(self._insert, rows)
        if session.get_bind().dialect.name == "postgresql":
            # Same payload for every commit: PostgreSQL folds duplicate notifications
            # of one transaction into one, so a transaction wakes the relay once.
            await session.execute(select(func.pg_notify(notify_channel(self.table), "")))
