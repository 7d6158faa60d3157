"""The migration lock: one deploy migrates a database at a time.

Alembic has no lock of its own. Two replicas that run ``upgrade`` at the same moment can
both apply a revision, and the second one fails half-way (or worse, succeeds twice).

- **PostgreSQL**: a session-level ``pg_advisory_lock`` on a *separate* connection. The
  migration connection stays free to commit, roll back and switch to autocommit (for
  ``CREATE INDEX CONCURRENTLY`` inside ``op.get_context().autocommit_block()``), and the
  lock lives exactly as long as the lock connection: a crashed deploy releases it.
- **SQLite**: an exclusive ``fcntl.flock`` on a file beside the database
  (``<database>.migrate.lock``). Only processes on the same machine can share an SQLite
  file, so a file lock covers them. In-memory databases and platforms without ``fcntl``
  take no lock (nothing else can reach them, or nothing can lock them).

The lock is polled, not blocked on: the caller learns through ``on_wait`` that another
migration holds it, and gets :class:`MigrationLockTimeoutError` after ``max_wait`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.engine import connect_checked
from qxdb.errors import MigrationLockTimeoutError

__all__ = ["LOCK_NAME", "MigrationLockTimeoutError", "WaitCallback", "lock_key", "migration_lock"]

LOCK_NAME = "qxdb.migrate"
WaitCallback = Callable[[str], None]
_POLL_SECONDS = 0.25

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)").bindparams(bindparam("key"))
_UNLOCK = text("SELECT pg_advisory_unlock(:key)").bindparams(bindparam("key"))
# Advisory locks on a bigint key show up in pg_locks split into two 32-bit halves.
_HOLDER = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = :high AND objid = :low AND objsubid = 1 LIMIT 1"
).bindparams(bindparam("high"), bindparam("low"))


def lock_key(name: str = LOCK_NAME) -> int:
    """The advisory-lock key: a stable signed 64-bit number derived from ``name``."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def migration_lock(
    engine: AsyncEngine,
    *,
    max_wait: float,
    on_wait: WaitCallback | None = None,
    name: str = LOCK_NAME,
) -> AsyncIterator[float]:
    """Hold the migration lock of ``engine``'s database; yields the seconds spent waiting."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        async with _advisory_lock(engine, max_wait, on_wait, name) as waited:
            yield waited
    elif dialect == "sqlite":
        async with _file_lock(engine, max_wait, on_wait) as waited:
            yield waited
    else:
        yield 0.0


@asynccontextmanager
async def _advisory_lock(
    engine: AsyncEngine, max_wait: float, on_wait: WaitCallback | None, name: str
) -> AsyncIterator[float]:
    key = lock_key(name)
    started = time.monotonic()
    async with connect_checked(engine) as conn:
        announced = False
        while True:
            acquired = bool((await conn.execute(_TRY_LOCK, {"key": key})).scalar_one())
            # End the transaction so the lock connection idles outside one while held.
            await conn.commit()
            if acquired:
                break
            waited = time.monotonic() - started
            if waited >= max_wait:
                raise MigrationLockTimeoutError(
                    f"another migration held the lock for more than {max_wait:g} s; "
                    "nothing was changed (raise --lock-timeout to wait longer)",
                    details={"lock": name, "lock_timeout_seconds": max_wait},
                )
            if not announced and on_wait is not None:
                holder = await _holder_pid(conn, key)
                who = f" (PostgreSQL backend pid {holder})" if holder else ""
                on_wait(
                    f"waiting for the migration lock: another migration is running{who}; "
                    f"waiting up to {max_wait:g} s"
                )
            announced = True
            await asyncio.sleep(min(_POLL_SECONDS, max(max_wait - waited, 0.01)))
        try:
            yield time.monotonic() - started
        finally:
            # If the connection broke, closing it releases the lock anyway.
            with suppress(Exception):
                await conn.execute(_UNLOCK, {"key": key})
                await conn.commit()


async def _holder_pid(conn: Any, key: int) -> int | None:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    params = {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}
    with suppress(Exception):
        pid = (await conn.execute(_HOLDER, params)).scalar_one_or_none()
        await conn.commit()
        return int(pid) if pid is not None else None
    return None


def sqlite_lock_path(engine: AsyncEngine) -> Path | None:
    """The lock file beside an SQLite database file; ``None`` for an in-memory database."""
    database = make_url(engine.url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).resolve().with_name(Path(database).name + ".migrate.lock")


@asynccontextmanager
async def _file_lock(
    engine: AsyncEngine, max_wait: float, on_wait: WaitCallback | None
) -> AsyncIterator[float]:
    path = sqlite_lock_path(engine)
    try:
        import fcntl
    except ImportError:  # Windows: documented no-op
        path = None
    if path is None:
        yield 0.0
        return
    started = time.monotonic()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= max_wait:
                    raise MigrationLockTimeoutError(
                        f"another migration held the lock file {path} for more than "
                        f"{max_wait:g} s; nothing was changed (raise --lock-timeout to wait longer)",
                        details={"lock": str(path), "lock_timeout_seconds": max_wait},
                    ) from None
                if not announced and on_wait is not None:
                    on_wait(
                        f"waiting for the migration lock {path.name}: another migration is "
                        f"running; waiting up to {max_wait:g} s"
                    )
                announced = True
                await asyncio.sleep(min(_POLL_SECONDS, max(max_wait - waited, 0.01)))
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
