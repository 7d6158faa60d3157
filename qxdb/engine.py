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
import math
import shlex
from collections.abc import AsyncIterator, Callable
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
from qxdb.urls import backend_of, display_url, is_sqlite_url, is_utf8_text, redact_secrets

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
    if not is_utf8_text(url):
        # An undecodable byte of a command-line argument: no driver can send it.
        raise ConfigurationError(
            f"invalid database URL {display_url(url)!r}: it holds a byte that is not UTF-8 "
            "(percent-encode it, e.g. %FF)"
        )
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
    if _is_asyncpg(url):
        _asyncpg_query_options(url)  # refuse an option asyncpg cannot use before connecting


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
    if _is_asyncpg(target):
        # The URL's query options are asyncpg keyword arguments once translated: the URL
        # keeps none of them, so SQLAlchemy never hands asyncpg a libpq name or a string.
        options = _asyncpg_query_options(target)
        kwargs["connect_args"] = _asyncpg_connect_args(settings, options)
        parsed = make_url(target)
        bare = parsed.set(
            query={key: value for key, value in parsed.query.items() if key in _ADDRESS_QUERY}
        )
        return create_async_engine(bare, **kwargs)
    if backend_of(target) == "postgresql":
        kwargs["connect_args"] = _postgres_connect_args(settings, target)
    return create_async_engine(target, **kwargs)


def _is_asyncpg(url: str) -> bool:
    return url.split("://", 1)[0].strip().lower() == "postgresql+asyncpg"


def _server_timeouts(settings: DatabaseSettings) -> dict[str, str]:
    timeouts: dict[str, str] = {}
    if settings.statement_timeout_ms:
        timeouts["statement_timeout"] = str(settings.statement_timeout_ms)
    if settings.lock_timeout_ms:
        timeouts["lock_timeout"] = str(settings.lock_timeout_ms)
    return timeouts


# The options a PostgreSQL URL may carry for asyncpg, as libpq (and hosting providers'
# ``postgres://…?sslmode=require`` URLs) or asyncpg spell them. Each maps to the asyncpg
# keyword argument it sets and the parser of its text; the rest of asyncpg's arguments are
# not URL material, and anything else would reach asyncpg as an unknown keyword.
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a positive number of seconds")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected a whole number >= 0")
    return value


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _server_options(text: str) -> dict[str, str]:
    """libpq's ``options=-c name=value …`` as asyncpg server settings."""
    words = shlex.split(text)
    found: dict[str, str] = {}
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        elif word.startswith("-c") or word.startswith("--"):
            word = word[2:]
        else:
            raise ValueError("expected -c name=value settings")
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise ValueError("expected -c name=value settings")
        found[name.replace("-", "_")] = value
    return found


_ASYNCPG_QUERY: dict[str, tuple[str, Callable[[str], Any]]] = {
    "sslmode": ("ssl", _choice(_SSL_MODES)),
    "ssl": ("ssl", _choice(_SSL_MODES)),
    "connect_timeout": ("timeout", _seconds),
    "timeout": ("timeout", _seconds),
    "command_timeout": ("command_timeout", _seconds),
    "application_name": ("server_settings", lambda text: {"application_name": text}),
    "options": ("server_settings", _server_options),
    "target_session_attrs": ("target_session_attrs", _choice(_SESSION_ATTRS)),
    "direct_tls": ("direct_tls", _boolean),
    "passfile": ("passfile", str),
    "prepared_statement_cache_size": ("prepared_statement_cache_size", _count),
    "statement_cache_size": ("statement_cache_size", _count),
    "max_cached_statement_lifetime": ("max_cached_statement_lifetime", _count),
    "max_cacheable_statement_size": ("max_cacheable_statement_size", _count),
}


# Where to connect, as a URL may also say it in its query (``?host=/run/postgresql``, one
# ``host=`` per server of a cluster): SQLAlchemy reads these itself, so they stay in the URL.
_ADDRESS_QUERY = frozenset({"host", "port", "user", "password", "database"})


def _asyncpg_query_options(url: str) -> dict[str, Any]:
    """The query options of an asyncpg URL (but :data:`_ADDRESS_QUERY`) as asyncpg keyword
    arguments, or a :class:`ConfigurationError` naming the option (never its value: it may
    be a secret)."""
    query: dict[str, str | tuple[str, ...]] = dict(make_url(url).query)
    options: dict[str, Any] = {}
    for name, raw in query.items():
        if name in _ADDRESS_QUERY:
            continue
        rule = _ASYNCPG_QUERY.get(name)
        if rule is None:
            raise ConfigurationError(
                f"invalid database URL {display_url(url)}: unsupported option {name!r} "
                f"(supported: {', '.join(sorted({*_ASYNCPG_QUERY, *_ADDRESS_QUERY}))})"
            )
        argument, parse = rule
        if not isinstance(raw, str):
            raise ConfigurationError(
                f"invalid database URL {display_url(url)}: option {name!r} is given twice"
            )
        try:
            value = parse(raw)
        except ValueError as exc:
            # Only the parsers' own messages are shown: Python's echo the value.
            reason = str(exc) if str(exc).startswith("expected") else ""
            raise ConfigurationError(
                f"invalid database URL {display_url(url)}: bad value for option {name!r}"
                + (f" ({reason})" if reason else "")
            ) from None
        if argument == "server_settings":
            options.setdefault("server_settings", {}).update(value)
        elif argument in options:
            raise ConfigurationError(
                f"invalid database URL {display_url(url)}: option {name!r} repeats "
                "another option's setting"
            )
        else:
            options[argument] = value
    return options


def _asyncpg_connect_args(settings: DatabaseSettings, options: dict[str, Any]) -> dict[str, Any]:
    """asyncpg's arguments: the settings' timeouts, then the URL's options (which win)."""
    server_settings = {**_server_timeouts(settings), **options.get("server_settings", {})}
    return {
        "timeout": settings.connect_timeout_seconds,
        **options,
        "server_settings": server_settings,
    }


def _postgres_connect_args(settings: DatabaseSettings, target: str) -> dict[str, Any]:
    """The driver arguments that apply the timeouts to every PostgreSQL connection."""
    timeouts = _server_timeouts(settings)
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
