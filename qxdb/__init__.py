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
    "CheckFailedError": "qxdb.errors",
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
    from qxdb.context import (
        RequestContext,
        current_context,
        request_scope,
        reset_context,
        set_context,
        system_scope,
    )
    from qxdb.domain import AggregateRoot, DomainEvent, Entity, Event, IntegrationEvent
    from qxdb.engine import SessionFactory, create_engine, make_session_factory, open_session
    from qxdb.errors import (
        BrokerUnavailableError,
        CheckFailedError,
        ConfigurationError,
        ConflictError,
        CursorError,
        DatabaseUnavailableError,
        Error,
        InvalidQueryError,
        NotFoundError,
        TenantScopeError,
        ValidationError,
    )
    from qxdb.ids import utcnow, uuid7
    from qxdb.mapping import (
        jsonb_column,
        make_metadata,
        make_registry,
        standard_audit_columns,
        timestamp_column,
        uuid_column,
    )
    from qxdb.outbox.publishers import (
        NatsJetStreamPublisher,
        OutboundMessage,
        Publisher,
        PublishOutcome,
    )
    from qxdb.outbox.recorder import DefaultOutboxRecorder, OutboxRecorder
    from qxdb.outbox.relay import OutboxRelay, RelayConfig, RelayCounters
    from qxdb.outbox.table import OUTBOX_TABLE_NAME, include_outbox_table
    from qxdb.query import (
        CursorPage,
        CursorPagination,
        Filter,
        OffsetPage,
        OffsetPagination,
        Sort,
    )
    from qxdb.result import Result
    from qxdb.settings import DatabaseSettings
    from qxdb.types import JSONType, UTCDateTime, UUIDType
    from qxdb.urls import display_url
