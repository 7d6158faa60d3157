"""Writes integration events to the outbox inside the caller's transaction."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from qxdb.domain import Event
from qxdb.ids import uuid7
from qxdb.outbox.table import outbox_table
from qxdb.outbox.tracing import current_trace_headers

__all__ = ["DefaultOutboxRecorder", "OutboxRecorder", "notify_channel", "outbox_row"]


@runtime_checkable
class OutboxRecorder(Protocol):
    """What the unit of work needs to persist integration events."""

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None: ...


def outbox_row(event: Event, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The outbox row for one event (ids are fresh UUID v7s); ``headers`` are sent with
    it (the recorder passes the active span's trace context).

    Without headers the column is left to its server default, so a service that records
    no trace context keeps working on a table not yet migrated to have ``headers``.
    """
    row = {
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
    if headers:
        row["headers"] = headers
    return row


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

    On PostgreSQL, just before the insert, one statement sends ``pg_notify(<table name>,
    '')`` (delivered at commit, never for a rolled-back transaction, so a listening relay
    wakes the moment the rows commit) and reads the database's ``clock_timestamp()``: the
    rows' ids are UUID v7s made from that clock, not the writer's. Row id order is the
    relay's per-key order; minted from one clock at insert time, it follows commit order
    for an aggregate guarded by a version check (its second writer waits for the first
    one's commit before it gets here), however far apart the writers' clocks are.
    """

    def __init__(self, table: Table | str | None = None) -> None:
        # None: the configured table (QX_DB__OUTBOX_TABLE), the one the relay reads.
        self.table = table if isinstance(table, Table) else outbox_table(table)
        # Executed with a list of rows, this one statement is compiled once and sent as
        # one multi-row INSERT (SQLAlchemy's "insertmanyvalues", which RETURNING enables);
        # `.values(rows)` would recompile a statement of events x columns binds per commit.
        self._insert = insert(self.table).returning(self.table.c.id)
        # Same payload for every commit: PostgreSQL folds duplicate notifications of one
        # transaction into one, so a transaction wakes the relay once.
        self._clock_and_notify = select(
            func.clock_timestamp(), func.pg_notify(notify_channel(self.table), "")
        )

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if not events:
            return
        # One look at the active span per commit: every event of it shares the trace.
        headers = current_trace_headers()
        rows = [outbox_row(ev, headers) for ev in events]
        if session.get_bind().dialect.name == "postgresql":
            stamp = (await session.execute(self._clock_and_notify)).one()[0]
            for row, row_id in zip(rows, uuid7_series(stamp, len(rows)), strict=True):
                row["id"] = row_id
        await session.execute(self._insert, rows)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SERIES_BITS = 20  # up to a million rows per commit keep their order


def uuid7_series(at: datetime, count: int) -> list[uuid.UUID]:
    """``count`` increasing UUID v7s for the instant ``at`` (RFC 9562, method 3).

    The 48-bit millisecond timestamp is followed, in the 12 bits of ``rand_a``, by the
    sub-millisecond fraction (microsecond steps), so two instants a microsecond apart give
    ordered ids; within the series, the top bits of ``rand_b`` count up; the rest is
    random.
    """
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    millis, fraction = divmod(micros, 1000)
    head = (millis << 80) | (0x7 << 76) | (((fraction << 12) // 1000) << 64) | (0b10 << 62)
    random_bits = 62 - _SERIES_BITS
    return [
        uuid.UUID(int=head | (n << random_bits) | secrets.randbits(random_bits))
        for n in range(count)
    ]
