"""qxdb: the database layer for async SQLAlchemy 2 services.

Import what you need from ``qxdb``. Names are resolved on first use, so importing a light
part (the cursor codec, the error tree) does not pay for SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it; tests/unit/test_public_api.py keeps this honest.
_EXPORTS: dict[str, str] = {
    # errors and results
    "Error": "qxdb.errors",
    "NotFoundError": "qxdb.errors",
    "ConflictError": "qxdb.errors",
    "ValidationError": "qxdb.errors",
    "InvalidQueryError": "qxdb.errors",
    "CursorError": "qxdb.errors",
    "ConfigurationError": "qxdb.errors",
    "TenantScopeError": "qxdb.errors",
    "DatabaseUnavailableError": "qxdb.errors",
    "BrokerUnavailableError": "qxdb.errors",
    "UnitOfWorkStateError": "qxdb.errors",
    "DispatchLoopError": "qxdb.errors",
    "MigrationError": "qxdb.errors",
    "MigrationLockTimeoutError": "qxdb.errors",
    "RevisionFailedError": "qxdb.errors",
    "Result": "qxdb.result",
    # domain, context, ids
    "Entity": "qxdb.domain",
    "AggregateRoot": "qxdb.domain",
    "Event": "qxdb.domain",
    "DomainEvent": "qxdb.domain",
    "IntegrationEvent": "qxdb.domain",
    "RequestContext": "qxdb.context",
    "current_context": "qxdb.context",
    "set_context": "qxdb.context",
    "reset_context": "qxdb.context",
    "request_scope": "qxdb.context",
    "system_scope": "qxdb.context",
    "uuid7": "qxdb.ids",
    "utcnow": "qxdb.ids",
    # settings, urls, engine
    "DatabaseSettings": "qxdb.settings",
    "display_url": "qxdb.urls",
    "SessionFactory": "qxdb.engine",
    "create_engine": "qxdb.engine",
    "make_session_factory": "qxdb.engine",
    "open_session": "qxdb.engine",
    # mapping and types
    "make_metadata": "qxdb.mapping",
    "make_registry": "qxdb.mapping",
    "standard_audit_columns": "qxdb.mapping",
    "uuid_column": "qxdb.mapping",
    "jsonb_column": "qxdb.mapping",
    "timestamp_column": "qxdb.mapping",
    "UTCDateTime": "qxdb.types",
    "UUIDType": "qxdb.types",
    "JSONType": "qxdb.types",
    # queries
    "Filter": "qxdb.query",
    "Sort": "qxdb.query",
    "OffsetPagination": "qxdb.query",
    "OffsetPage": "qxdb.query",
    "CursorPagination": "qxdb.query",
    "CursorPage": "qxdb.query",
    # cursors and keyset pagination
    "CursorCodec": "qxdb.cursor",
    "DecodedCursor": "qxdb.cursor",
    "encode_cursor": "qxdb.cursor",
    "decode_cursor": "qxdb.cursor",
    "build_cursor_page": "qxdb.pagination",
    "fetch_cursor_page": "qxdb.pagination",
    # outbox
    "OUTBOX_TABLE_NAME": "qxdb.outbox.table",
    "include_outbox_table": "qxdb.outbox.table",
    "OutboxRecorder": "qxdb.outbox.recorder",
    "DefaultOutboxRecorder": "qxdb.outbox.recorder",
    "OutboxRelay": "qxdb.outbox.relay",
    "RelayConfig": "qxdb.outbox.relay",
    "RelayCounters": "qxdb.outbox.relay",
    "Publisher": "qxdb.outbox.publishers",
    "NatsJetStreamPublisher": "qxdb.outbox.publishers",
    "OutboundMessage": "qxdb.outbox.publishers",
    "PublishOutcome": "qxdb.outbox.publishers",
    "OutboxStore": "qxdb.outbox.store",
    "open_outbox_store": "qxdb.outbox.store",
    "OutboxSelection": "qxdb.outbox.selection",
    "OutboxRow": "qxdb.outbox.reports",
    "OutboxStats": "qxdb.outbox.reports",
    "parse_duration": "qxdb.durations",
    "parse_timestamp": "qxdb.durations",
    # schema conventions
    "SchemaConfig": "qxdb.conventions",
    "check_metadata": "qxdb.conventions",
    "check_database": "qxdb.conventions",
    # repository and unit of work
    "Repository": "qxdb.repository",
    "AggregateTracker": "qxdb.repository",
    "escape_like": "qxdb.repository",
    "UnitOfWork": "qxdb.uow",
    "UnitOfWorkScope": "qxdb.uow",
    "EventDispatcher": "qxdb.uow",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qxdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    # `X as X`: explicit re-exports, so users' mypy --strict sees the public names.
    from qxdb.context import (
        RequestContext as RequestContext,
        current_context as current_context,
        request_scope as request_scope,
        reset_context as reset_context,
        set_context as set_context,
        system_scope as system_scope,
    )
    from qxdb.conventions import (
        SchemaConfig as SchemaConfig,
        check_database as check_database,
        check_metadata as check_metadata,
    )
    from qxdb.cursor import (
        CursorCodec as CursorCodec,
        DecodedCursor as DecodedCursor,
        decode_cursor as decode_cursor,
        encode_cursor as encode_cursor,
    )
    from qxdb.domain import (
        AggregateRoot as AggregateRoot,
        DomainEvent as DomainEvent,
        Entity as Entity,
        Event as Event,
        IntegrationEvent as IntegrationEvent,
    )
    from qxdb.durations import (
        parse_duration as parse_duration,
        parse_timestamp as parse_timestamp,
    )
    from qxdb.engine import (
        SessionFactory as SessionFactory,
        create_engine as create_engine,
        make_session_factory as make_session_factory,
        open_session as open_session,
    )
    from qxdb.errors import (
        BrokerUnavailableError as BrokerUnavailableError,
        ConfigurationError as ConfigurationError,
        ConflictError as ConflictError,
        CursorError as CursorError,
        DatabaseUnavailableError as DatabaseUnavailableError,
        DispatchLoopError as DispatchLoopError,
        Error as Error,
        InvalidQueryError as InvalidQueryError,
        MigrationError as MigrationError,
        MigrationLockTimeoutError as MigrationLockTimeoutError,
        NotFoundError as NotFoundError,
        RevisionFailedError as RevisionFailedError,
        TenantScopeError as TenantScopeError,
        UnitOfWorkStateError as UnitOfWorkStateError,
        ValidationError as ValidationError,
    )
    from qxdb.ids import (
        utcnow as utcnow,
        uuid7 as uuid7,
    )
    from qxdb.mapping import (
        jsonb_column as jsonb_column,
        make_metadata as make_metadata,
        make_registry as make_registry,
        standard_audit_columns as standard_audit_columns,
        timestamp_column as timestamp_column,
        uuid_column as uuid_column,
    )
    from qxdb.outbox.publishers import (
        NatsJetStreamPublisher as NatsJetStreamPublisher,
        OutboundMessage as OutboundMessage,
        Publisher as Publisher,
        PublishOutcome as PublishOutcome,
    )
    from qxdb.outbox.recorder import (
        DefaultOutboxRecorder as DefaultOutboxRecorder,
        OutboxRecorder as OutboxRecorder,
    )
    from qxdb.outbox.relay import (
        OutboxRelay as OutboxRelay,
        RelayConfig as RelayConfig,
        RelayCounters as RelayCounters,
    )
    from qxdb.outbox.reports import (
        OutboxRow as OutboxRow,
        OutboxStats as OutboxStats,
    )
    from qxdb.outbox.selection import (
        OutboxSelection as OutboxSelection,
    )
    from qxdb.outbox.store import (
        OutboxStore as OutboxStore,
        open_outbox_store as open_outbox_store,
    )
    from qxdb.outbox.table import (
        OUTBOX_TABLE_NAME as OUTBOX_TABLE_NAME,
        include_outbox_table as include_outbox_table,
    )
    from qxdb.pagination import (
        build_cursor_page as build_cursor_page,
        fetch_cursor_page as fetch_cursor_page,
    )
    from qxdb.query import (
        CursorPage as CursorPage,
        CursorPagination as CursorPagination,
        Filter as Filter,
        OffsetPage as OffsetPage,
        OffsetPagination as OffsetPagination,
        Sort as Sort,
    )
    from qxdb.repository import (
        AggregateTracker as AggregateTracker,
        Repository as Repository,
        escape_like as escape_like,
    )
    from qxdb.result import (
        Result as Result,
    )
    from qxdb.settings import (
        DatabaseSettings as DatabaseSettings,
    )
    from qxdb.types import (
        JSONType as JSONType,
        UTCDateTime as UTCDateTime,
        UUIDType as UUIDType,
    )
    from qxdb.uow import (
        EventDispatcher as EventDispatcher,
        UnitOfWork as UnitOfWork,
        UnitOfWorkScope as UnitOfWorkScope,
    )
    from qxdb.urls import (
        display_url as display_url,
    )
