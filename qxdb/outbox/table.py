"""The outbox table: one row per integration event, written in the business transaction.

Columns of the reference design (same names, same meaning):

================  ===========================================================
id                UUID v7 of the row (time-ordered)
event_name        e.g. ``orders.placed``
event_version     schema version of the event
payload           the whole event envelope (JSONB on PostgreSQL)
occurred_at       when the event happened
correlation_id    request that caused it
causation_id      message that caused it
tenant_id         tenant it belongs to
published_at      when the broker acknowledged it; NULL while pending
attempts          delivery attempts so far
last_error        the last delivery error, shortened
================  ===========================================================

Delivery state, shared by the relay and ``qxdb outbox`` operations:

================  ===========================================================
recorded_at       when the row was written (server default)
delivery_id       identity of the current delivery (``Nats-Msg-Id``); a replay
                  gives the row a fresh one so broker de-duplication lets it through
ordering_key      events with the same key are delivered in recorded order
                  (the aggregate id unless the event names another key)
next_attempt_at   not to be tried before this (backoff); NULL means now
locked_until      lease: a relay owns the row until then
locked_by         which relay holds the lease
dead_at           set when the row ran out of attempts; replay clears it
replay_count      how many times an operator replayed the row (server default 0)
first_failed_at   when its first delivery failed; a replay keeps it, so a row that
                  was replayed and failed again is visible as such
error_group       fingerprint of ``last_error`` (see :mod:`qxdb.outbox.fingerprint`),
                  a generated column PostgreSQL keeps; NULL on SQLite
headers           message headers to send with the event (JSON object, ``{}`` by
                  default): the W3C ``traceparent``/``tracestate`` of the span
                  the event was recorded in (see :mod:`qxdb.outbox.tracing`)
================  ===========================================================

Status, derived: *pending* (``published_at`` and ``dead_at`` NULL), *failed* (pending with
a ``last_error``), *dead* (``dead_at`` set), *published* (``published_at`` set).

A table created with the reference's shape is brought up to date by an ordinary Alembic
revision: include this table in the service's metadata and run
``qxdb migrate revision --autogenerate -m "outbox delivery state"``; the new columns are
nullable or have server defaults, so existing rows stay valid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    FromClause,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    text,
)

from qxdb.core.defaults import OUTBOX_TABLE_NAME
from qxdb.core.identifiers import (
    InvalidIdentifier,
    outbox_index_name,
    split_qualified,
    validate_outbox_name,
)
from qxdb.errors import ConfigurationError
from qxdb.ids import uuid7
from qxdb.outbox.triage import error_group_column
from qxdb.types import JSONType, UTCDateTime, UUIDType

__all__ = [
    "OUTBOX_TABLE_NAME",
    "failure_marks",
    "include_outbox_table",
    "outbox_table",
    "pending_clause",
    "replay_marks",
    "resolve_outbox_name",
]

LAST_ERROR_MAX = 2048


def pending_clause(table: FromClause) -> ColumnElement[bool]:
    """Rows a relay still has to deliver: neither published nor dead (failed included).

    The one definition of *pending*: the partial indexes, the selections, the store and
    the relay all use it (``table`` may be an alias of the outbox table).
    """
    return and_(table.c.published_at.is_(None), table.c.dead_at.is_(None))


def replay_marks(table: Table) -> dict[str, ColumnElement[Any]]:
    """What a replay records besides resetting the delivery state: one more replay, and
    the first failure kept (where nothing wrote it yet, the death is the best known)."""
    c = table.c
    return {
        "replay_count": c.replay_count + 1,
        "first_failed_at": func.coalesce(c.first_failed_at, c.dead_at),
    }


def failure_marks(table: Table, now: ColumnElement[Any]) -> dict[str, ColumnElement[Any]]:
    """What a delivery failure records besides the error: the first failure's time, once.

    For the relay's failure UPDATE (``.values(**failure_marks(t, now), …)``)."""
    return {"first_failed_at": func.coalesce(table.c.first_failed_at, now)}


def resolve_outbox_name(name: str | None) -> str:
    """``name``, or the configured table (``QX_DB__OUTBOX_TABLE``) when None, validated:
    a plain identifier (optionally ``schema.name``) short enough for every derived name."""
    if name is None:
        from qxdb.settings import configured_outbox_table

        return configured_outbox_table()
    try:
        return validate_outbox_name(name)
    except InvalidIdentifier as exc:
        raise ConfigurationError(str(exc)) from None


def include_outbox_table(
    metadata: MetaData, name: str | None = None, *, partitioned: bool = False
) -> Table:
    """Register the outbox table in ``metadata`` (so Alembic autogenerate sees it).

    ``name`` defaults to the configured table (``QX_DB__OUTBOX_TABLE``, else
    ``qx_outbox_events``), the table the recorder, the store and the relay use.
    ``partitioned`` (PostgreSQL): range-partitioned on ``recorded_at``, so the primary key
    is ``(id, recorded_at)``; see :mod:`qxdb.outbox.partitions` for the partitions.
    """
    if not isinstance(metadata, MetaData):
        raise ConfigurationError(
            f"include_outbox_table takes a MetaData, got {type(metadata).__name__}"
        )
    # "schema.name" is a table in a schema; given whole to Table() it would become one
    # quoted identifier with a dot in it.
    schema, name = split_qualified(resolve_outbox_name(name))
    key = f"{schema}.{name}" if schema else name
    if metadata.schema and not schema:
        key = f"{metadata.schema}.{name}"
    if key in metadata.tables:
        return metadata.tables[key]
    table = Table(
        name,
        metadata,
        Column("id", UUIDType(), primary_key=True, default=uuid7),
        Column("event_name", String(255), nullable=False),
        Column("event_version", Integer, nullable=False, default=1, server_default="1"),
        Column("payload", JSONType(), nullable=False),
        Column("occurred_at", UTCDateTime(), nullable=False),
        Column("correlation_id", UUIDType(), nullable=True),
        Column("causation_id", UUIDType(), nullable=True),
        Column("tenant_id", UUIDType(), nullable=True),
        Column("published_at", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0, server_default="0"),
        Column("last_error", String(LAST_ERROR_MAX), nullable=True),
        # A partitioned table's primary key must hold its partition key.
        Column(
            "recorded_at",
            UTCDateTime(),
            nullable=False,
            server_default=func.now(),
            primary_key=partitioned,
        ),
        Column("delivery_id", UUIDType(), nullable=True),
        Column("ordering_key", String(255), nullable=True),
        Column("next_attempt_at", UTCDateTime(), nullable=True),
        Column("locked_until", UTCDateTime(), nullable=True),
        Column("locked_by", String(64), nullable=True),
        Column("dead_at", UTCDateTime(), nullable=True),
        # Server default only, no Python default: the recorder's INSERT leaves both out,
        # so it keeps working on a table not yet migrated to have them.
        Column("replay_count", Integer, nullable=False, server_default="0"),
        Column("first_failed_at", UTCDateTime(), nullable=True),
        error_group_column(),
        # A server default: rows written by older code (or by hand) carry no headers.
        Column("headers", JSONType(), nullable=False, server_default=text("'{}'")),
        info={"qxdb_outbox": True, "qxdb_partitioned": partitioned},
        schema=schema,
        postgresql_partition_by="RANGE (recorded_at)" if partitioned else None,
    )
    c = table.c
    pending = pending_clause(table)
    Index(
        outbox_index_name(name, "pending"),
        c.id,
        postgresql_where=pending,
        sqlite_where=pending,
    )
    Index(
        outbox_index_name(name, "pending_key"),
        c.ordering_key,
        c.id,
        postgresql_where=pending,
        sqlite_where=pending,
    )
    Index(outbox_index_name(name, "event_name"), c.event_name)
    Index(outbox_index_name(name, "occurred_at"), c.occurred_at)
    # Partial: pending rows stay out, so a replay (published_at back to NULL) writes
    # one index entry less per row. Purge ranges (published_at < cutoff) still use it.
    published = c.published_at.is_not(None)
    Index(
        outbox_index_name(name, "published_at"),
        c.published_at,
        postgresql_where=published,
        sqlite_where=published,
    )
    # Dead rows are few: a partial index keeps the NULLs of every other row out of it.
    dead = c.dead_at.is_not(None)
    Index(outbox_index_name(name, "dead_at"), c.dead_at, postgresql_where=dead, sqlite_where=dead)
    return table


def outbox_table(name: str | None = None) -> Table:
    """The outbox table on a private metadata, for code that only reads or writes it
    (``name`` defaults to the configured table)."""
    return include_outbox_table(MetaData(), name)
