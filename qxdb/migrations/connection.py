"""The engine migrations run on.

Unpooled (a migration run opens two connections at most: the lock and the migration).

Timeouts on PostgreSQL: the *explicitly configured* ``QX_DB__STATEMENT_TIMEOUT_MS`` is
applied; the library's default statement timeout (10 s, meant for request queries) is
not, since an index build on a large table runs for minutes. ``lock_timeout`` always is:
``QX_DB__LOCK_TIMEOUT_MS`` when set, else :data:`DEFAULT_DDL_LOCK_TIMEOUT` (5 s), or what
the caller passes (``--ddl-lock-timeout``). A migration queued behind a long transaction
for an ACCESS EXCLUSIVE lock makes every later query on that table queue behind *it*;
the lock timeout bounds that stall, and the runner retries the revision. Statements
``… CONCURRENTLY`` run with no lock timeout (see ``_CONCURRENTLY``).

On SQLite the driver (``sqlite3`` in its legacy mode) opens transactions only before
INSERT/UPDATE/DELETE, so DDL would commit statement by statement and a failed revision
would leave half its tables behind. The migration engine therefore emits ``BEGIN``
itself (SQLAlchemy's documented recipe), which makes SQLite's DDL transactional like
PostgreSQL's: a failed revision leaves nothing (outside an ``autocommit_block``).
"""

from __future__ import annotations

import math
import re
from contextlib import suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.core.defaults import MIGRATION_DDL_LOCK_TIMEOUT_SECONDS, POSTGRES_MAX_TIMEOUT_MS
from qxdb.engine import create_engine
from qxdb.settings import DatabaseSettings

__all__ = [
    "DEFAULT_DDL_LOCK_TIMEOUT",
    "MAX_DDL_LOCK_TIMEOUT",
    "check_ddl_lock_timeout",
    "ddl_lock_timeout_ms",
    "migration_engine",
    "migration_settings",
]

DEFAULT_DDL_LOCK_TIMEOUT = MIGRATION_DDL_LOCK_TIMEOUT_SECONDS
# Statements that take only SHARE UPDATE EXCLUSIVE: while they wait, no reader or writer
# queues behind them, but they wait for every older transaction to end, and those waits
# count against lock_timeout. They run with no lock timeout.
_CONCURRENTLY = re.compile(
    r"^\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX"
    r"|REINDEX(?:\s*\([^)]*\))?\s+(?:INDEX|TABLE|SCHEMA|DATABASE|SYSTEM))\s+CONCURRENTLY\b",
    re.I,
)
_LIFTED = "qxdb.lock_timeout_lifted"
MAX_DDL_LOCK_TIMEOUT = POSTGRES_MAX_TIMEOUT_MS / 1000


def check_ddl_lock_timeout(seconds: float | None) -> None:
    """Refuse a DDL lock timeout PostgreSQL cannot take: finite, 0 to 2,147,483.647 s.

    ``lock_timeout`` is a 32-bit count of milliseconds; ``inf`` would overflow while
    converting and ``1e300`` would reach the server only to be refused there.
    """
    if seconds is None:
        return
    from qxdb.errors import ValidationError

    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValidationError(
            f"the DDL lock timeout must be a number of seconds, not {type(seconds).__name__}"
        )
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DDL_LOCK_TIMEOUT:
        raise ValidationError(
            f"the DDL lock timeout must be 0 to {MAX_DDL_LOCK_TIMEOUT:,} seconds "
            f"(0: wait forever), not {seconds:g}",
            details={"ddl_lock_timeout": str(seconds)},
        )


def ddl_lock_timeout_ms(settings: DatabaseSettings, override: float | None = None) -> int:
    """The ``lock_timeout`` of migration statements, in ms (0: wait forever).

    ``override`` (seconds, ``--ddl-lock-timeout``) first, then an explicitly set
    ``QX_DB__LOCK_TIMEOUT_MS``, then :data:`DEFAULT_DDL_LOCK_TIMEOUT`.
    """
    if override is not None:
        check_ddl_lock_timeout(override)
        return round(override * 1000)
    if "lock_timeout_ms" in settings.model_fields_set and settings.lock_timeout_ms is not None:
        return settings.lock_timeout_ms
    return round(DEFAULT_DDL_LOCK_TIMEOUT * 1000)


def migration_settings(
    settings: DatabaseSettings, *, ddl_lock_timeout: float | None = None
) -> DatabaseSettings:
    explicit = settings.model_fields_set
    return settings.model_copy(
        update={
            "pool_kind": "null",
            "statement_timeout_ms": settings.statement_timeout_ms
            if "statement_timeout_ms" in explicit
            else None,
            "lock_timeout_ms": ddl_lock_timeout_ms(settings, ddl_lock_timeout) or None,
        }
    )


def migration_engine(
    settings: DatabaseSettings, *, ddl_lock_timeout: float | None = None
) -> AsyncEngine:
    engine = create_engine(migration_settings(settings, ddl_lock_timeout=ddl_lock_timeout))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_no_implicit_transactions)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "before_cursor_execute", _lift_for_concurrently)
        event.listen(engine.sync_engine, "after_cursor_execute", _restore_lock_timeout)
        event.listen(engine.sync_engine, "handle_error", _restore_after_error)
    return engine


def _driver_sql(conn: Connection, sql: str) -> None:
    # A cursor of its own: the statement being executed owns the other one.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _lift_for_concurrently(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    # CREATE INDEX CONCURRENTLY runs only outside a transaction (autocommit_block), so the
    # SET and the RESET below take effect at once and end with the statement.
    if _CONCURRENTLY.match(statement):
        _driver_sql(conn, "SET lock_timeout = 0")
        conn.info[_LIFTED] = True


def _restore_lock_timeout(conn: Connection, *_args: Any) -> None:
    if conn.info.pop(_LIFTED, False):
        _driver_sql(conn, "RESET lock_timeout")  # back to the connection's configured value


def _restore_after_error(context: Any) -> None:
    conn = context.connection
    if conn is None or not conn.info.pop(_LIFTED, False):
        return
    # Inside a transaction the failed statement aborted it, and its rollback undoes the
    # SET; outside one (autocommit) the SET stays until reset. Never mask the real error.
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        with suppress(Exception):
            _driver_sql(conn, "RESET lock_timeout")


def _sqlite_no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # Inside Alembic's autocommit_block the connection is in AUTOCOMMIT: SQLAlchemy then
    # never commits, so a BEGIN here would leave the statements of the block uncommitted.
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    conn.exec_driver_sql("BEGIN")
