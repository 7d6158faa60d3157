"""Async engine, session factory and sessions.

One ``AsyncEngine`` per database for the life of the process; one ``AsyncSession`` per
unit of work. :func:`create_engine` applies every setting of
:class:`~qxdb.settings.DatabaseSettings` the dialect supports:

- PostgreSQL (asyncpg): pool options, and ``statement_timeout`` / ``lock_timeout`` set as
  server settings of every connection, so a runaway query fails with a timeout error.
- SQLite (aiosqlite): pool options where SQLite has a pool (not for ``:memory:``), foreign
  keys enforced, WAL journal and a busy timeout so readers and one writer coexist.
  SQLite has no statement timeout; the setting is ignored there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from qxdb.core.failures import is_unavailable
from qxdb.errors import ConfigurationError, DatabaseUnavailableError
from qxdb.settings import DatabaseSettings
from qxdb.urls import backend_of, display_url, is_sqlite_url, redact_secrets

__all__ = [
    "SessionFactory",
    "check_url",
    "connect_checked",
    "create_engine",
    "make_session_factory",
    "open_session",
    "unavailable_error",
]

SessionFactory = async_sessionmaker[AsyncSession]


def create_engine(
    settings: DatabaseSettings | None = None, *, url: str | None = None
) -> AsyncEngine:
    """Build the process-wide async engine; ``await engine.dispose()`` at shutdown."""
    if settings is not None and not isinstance(settings, DatabaseSettings):
        raise ConfigurationError(
            f"create_engine takes DatabaseSettings, got {type(settings).__name__}"
        )
    if url is not None and not isinstance(url, str):
        raise ConfigurationError(f"the database URL must be a string, got {type(url).__name__}")
    settings = (settings or DatabaseSettings()).with_url(url)
    target = settings.resolved_url
    check_url(target)
    try:
        return _create_engine(settings, target)
    except (ArgumentError, NoSuchModuleError, ValueError, TypeError) as exc:
        # Everything create_async_engine refuses is a property of the URL or its query
        # options (an unknown option value is a ValueError/TypeError from the dialect).
        raise ConfigurationError(
            f"invalid database URL {display_url(target)}: {redact_secrets(str(exc), target)}"
        ) from None
    except ImportError as exc:
        raise ConfigurationError(
            f"the driver for {display_url(target)} is not installed: {exc}"
        ) from None


def check_url(url: str) -> None:
    """Refuse a URL SQLAlchemy cannot parse (bad port included) with a
    :class:`ConfigurationError` that names it without its password."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("the database URL is blank: set QX_DB__URL or --database-url")
    if url.partition("://")[2].partition("?")[0].count("@") > 1:
        # SQLAlchemy would end the password at the first "@" and connect to the wrong host
        # (and print the rest of the password as that host); refuse before connecting.
        raise ConfigurationError(
            f"invalid database URL {display_url(url)!r}: the password holds an unencoded '@' "
            "(write it as %40)"
        )
    try:
        port = make_url(url).port  # parsing the port is part of the check
        valid = port is None or 0 < port < 65536
    except (ArgumentError, ValueError, TypeError):
        valid = False
    if not valid:
        raise ConfigurationError(
            f"invalid database URL {display_url(url)!r}: "
            "expected dialect+driver://user@host:port/database (port 1-65535)"
        )


def _create_engine(settings: DatabaseSettings, target: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": settings.echo}
    memory = is_sqlite_url(target) and (
        ":memory:" in target or target.rstrip("/").endswith("sqlite+aiosqlite:")
    )
    if settings.pool_kind == "null":
        kwargs["poolclass"] = NullPool
    elif not memory:
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_seconds,
            pool_recycle=settings.pool_recycle_seconds,
            pool_pre_ping=settings.pool_pre_ping,
        )
    if is_sqlite_url(target):
        kwargs["connect_args"] = {"timeout": settings.connect_timeout_seconds}
        engine = create_async_engine(target, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    if backend_of(target) == "postgresql":
        kwargs["connect_args"] = _postgres_connect_args(settings, target)
    return create_async_engine(target, **kwargs)


def _postgres_connect_args(settings: DatabaseSettings, target: str) -> dict[str, Any]:
    """The driver arguments that apply the timeouts to every PostgreSQL connection."""
    timeouts: dict[str, str] = {}
    if settings.statement_timeout_ms:
        timeouts["statement_timeout"] = str(settings.statement_timeout_ms)
    if settings.lock_timeout_ms:
        timeouts["lock_timeout"] = str(settings.lock_timeout_ms)
    if target.startswith("postgresql+asyncpg"):
        return {"server_settings": timeouts, "timeout": settings.connect_timeout_seconds}
    # Any other driver (plain postgresql:// is psycopg's async mode) speaks libpq: the
    # settings go in its `options` parameter, so the timeouts never depend on the driver.
    options = " ".join(f"-c {name}={value}" for name, value in timeouts.items())
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, int(settings.connect_timeout_seconds))
    }
    if options:
        connect_args["options"] = options
    return connect_args


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    """A session factory for the engine: no expiry on commit, no autoflush."""
    if not isinstance(engine, AsyncEngine):
        raise ConfigurationError(
            f"make_session_factory takes an AsyncEngine (create_engine), "
            f"got {type(engine).__name__}"
        )
    return async_sessionmaker(
        bind=engine, expire_on_commit=False, autoflush=False, class_=AsyncSession
    )


@asynccontextmanager
async def open_session(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session that is closed whatever happens inside the block."""
    session = factory()
    try:
        yield session
    finally:
        await session.close()


def unavailable_error(exc: BaseException, url: str) -> DatabaseUnavailableError:
    """Turn a driver's connection failure into one clear, password-free error."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if isinstance(cause, TimeoutError | asyncio.TimeoutError):
        reason = "timed out connecting"
    return DatabaseUnavailableError(
        f"cannot connect to {display_url(url)}: {redact_secrets(reason, url)}",
        details={"url": display_url(url), "reason": type(cause).__name__},
    )


@asynccontextmanager
async def connect_checked(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection, or :class:`DatabaseUnavailableError` if the database cannot be reached.

    Only the connect is translated: errors from statements run inside the block pass
    through unchanged.
    """
    url = engine.url.render_as_string(hide_password=False)
    try:
        conn = await engine.connect()
    except Exception as exc:
        if is_unavailable(exc):
            raise unavailable_error(exc, url) from None
        raise
    try:
        yield conn
    finally:
        await conn.close()


async def server_version(conn: AsyncConnection) -> str:
    if conn.dialect.name == "sqlite":
        return str((await conn.execute(text("select sqlite_version()"))).scalar_one())
    return str((await conn.execute(text("show server_version"))).scalar_one())
