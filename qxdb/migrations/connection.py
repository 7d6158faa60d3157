"""The engine migrations run on.

Unpooled (a migration run opens two connections at most: the lock and the migration),
and with the *explicitly configured* ``QX_DB__STATEMENT_TIMEOUT_MS`` and
``QX_DB__LOCK_TIMEOUT_MS`` applied to every connection on PostgreSQL. The library's
default statement timeout (10 s, meant for request queries) is not applied to migrations:
an index build on a large table runs for minutes. ``lock_timeout`` is the setting that
keeps a migration from queueing behind a long transaction while blocking every query
after it; set it for deploys (``QX_DB__LOCK_TIMEOUT_MS=5000``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.engine import create_engine
from qxdb.settings import DatabaseSettings

__all__ = ["migration_engine", "migration_settings"]


def migration_settings(settings: DatabaseSettings) -> DatabaseSettings:
    explicit = settings.model_fields_set
    return settings.model_copy(
        update={
            "pool_kind": "null",
            "statement_timeout_ms": settings.statement_timeout_ms
            if "statement_timeout_ms" in explicit
            else None,
            "lock_timeout_ms": settings.lock_timeout_ms if "lock_timeout_ms" in explicit else None,
        }
    )


def migration_engine(settings: DatabaseSettings) -> AsyncEngine:
    return create_engine(migration_settings(settings))
