"""The public surface is curated: every exported name resolves, and importing is light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import qxdb


def test_every_exported_name_resolves() -> None:
    for name in qxdb.__all__:
        assert getattr(qxdb, name) is not None, name


# The public surface, written out: adding, removing or renaming a public name is a
# decision made here, on purpose, not a side effect (as httpx's test_exported_members).
PUBLIC_NAMES = [
    "AggregateRoot",
    "AggregateTracker",
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "CursorCodec",
    "CursorError",
    "CursorPage",
    "CursorPagination",
    "DatabaseSettings",
    "DatabaseUnavailableError",
    "DecodedCursor",
    "DefaultOutboxRecorder",
    "DispatchLoopError",
    "DomainEvent",
    "Entity",
    "Error",
    "Event",
    "EventDispatcher",
    "Filter",
    "IntegrationEvent",
    "InvalidQueryError",
    "JSONType",
    "MigrationError",
    "MigrationLockTimeoutError",
    "NatsJetStreamPublisher",
    "NotFoundError",
    "OUTBOX_TABLE_NAME",
    "OffsetPage",
    "OffsetPagination",
    "OutboundMessage",
    "OutboxRecorder",
    "OutboxRelay",
    "OutboxRow",
    "OutboxSelection",
    "OutboxStats",
    "OutboxStore",
    "PublishOutcome",
    "Publisher",
    "RelayConfig",
    "RelayCounters",
    "Repository",
    "RequestContext",
    "Result",
    "RevisionFailedError",
    "SchemaConfig",
    "SessionFactory",
    "Sort",
    "TenantScopeError",
    "UTCDateTime",
    "UUIDType",
    "UnitOfWork",
    "UnitOfWorkScope",
    "UnitOfWorkStateError",
    "ValidationError",
    "__version__",
    "build_cursor_page",
    "check_database",
    "check_metadata",
    "create_engine",
    "current_context",
    "decode_cursor",
    "display_url",
    "encode_cursor",
    "escape_like",
    "fetch_cursor_page",
    "include_outbox_table",
    "jsonb_column",
    "make_metadata",
    "make_registry",
    "make_session_factory",
    "open_outbox_store",
    "open_session",
    "parse_duration",
    "parse_timestamp",
    "request_scope",
    "reset_context",
    "set_context",
    "standard_audit_columns",
    "system_scope",
    "timestamp_column",
    "utcnow",
    "uuid7",
    "uuid_column",
]


def test_the_public_names_are_exactly_these() -> None:
    assert qxdb.__all__ == PUBLIC_NAMES  # sorted, unique, and nothing else
    assert dir(qxdb) == PUBLIC_NAMES
    star: dict[str, object] = {}
    exec("from qxdb import *", star)
    assert sorted(k for k in star if k != "__builtins__") == PUBLIC_NAMES
    with pytest.raises(AttributeError, match="no attribute 'CheckFailedError'"):
        _ = qxdb.CheckFailedError  # removed: nothing raised it


def test_every_error_class_is_in_the_tree() -> None:
    # Import every module, then find every qxdb.Error subclass wherever it is defined.
    import importlib
    import pkgutil

    import qxdb.errors

    for module in pkgutil.walk_packages(qxdb.__path__, "qxdb."):
        if ".demo" not in module.name and not module.name.startswith("qxdb.migrations.env"):
            importlib.import_module(module.name)
    found: set[type] = set()
    stack: list[type] = [qxdb.errors.Error]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("qxdb") and sub not in found:
                found.add(sub)
                stack.append(sub)
    assert {c.__module__ for c in found} == {"qxdb.errors"}, sorted(
        f"{c.__module__}.{c.__name__}" for c in found
    )
    drawn = qxdb.errors.__doc__ or ""
    for cls in found:
        assert f"── {cls.__name__}" in drawn, cls.__name__
        assert cls.__name__ in qxdb.__all__, cls.__name__
    # The old homes still work, as re-exports of the same classes.
    from qxdb.migrations import MigrationError, MigrationLockTimeoutError
    from qxdb.migrations.lock import MigrationLockTimeoutError as from_lock
    from qxdb.migrations.runner import MigrationError as from_runner
    from qxdb.uow import DispatchLoopError

    assert DispatchLoopError is qxdb.errors.DispatchLoopError
    assert MigrationError is from_runner is qxdb.errors.MigrationError
    assert MigrationLockTimeoutError is from_lock is qxdb.errors.MigrationLockTimeoutError


def test_importing_qxdb_and_light_parts_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, qxdb; from qxdb import Result, Error, uuid7, request_scope, display_url\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'asyncpg', 'aiosqlite') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_type_checkers_see_every_exported_name_where_it_resolves() -> None:
    # Users' mypy --strict reads the TYPE_CHECKING block, the runtime reads _EXPORTS: a
    # name in only one of them is untyped (or missing) for one of the two.
    tree = ast.parse(Path(qxdb.__file__).read_text())
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{alias.name}: not an explicit re-export"
                    seen[alias.name] = imp.module
    assert seen == qxdb._EXPORTS
