"""Engine settings that must really take effect."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from qxdb import DatabaseSettings, create_engine
from qxdb.engine import connect_checked
from qxdb.errors import DatabaseUnavailableError


async def test_statement_timeout_fires_on_postgresql(postgres_url: str) -> None:
    engine = create_engine(DatabaseSettings(statement_timeout_ms=200), url=postgres_url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(2)"))
            await conn.rollback()
            # A quick statement on the same connection still works.
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_null_pool_and_queue_pool(postgres_url: str) -> None:
    for kind in ("null", "queue"):
        engine = create_engine(DatabaseSettings(pool_kind=kind, pool_size=2), url=postgres_url)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("select 1"))).scalar_one() == 1
            assert type(engine.pool).__name__ == (
                "NullPool" if kind == "null" else "AsyncAdaptedQueuePool"
            )
        finally:
            await engine.dispose()


async def test_unreachable_database_is_one_clear_error_without_password() -> None:
    url = "postgresql+asyncpg://app:hunter2secret@127.0.0.1:1/app"
    engine = create_engine(DatabaseSettings(connect_timeout_seconds=2), url=url)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            async with connect_checked(engine):
                pass
    finally:
        await engine.dispose()
    assert "hunter2secret" not in str(info.value)
    assert "app:***@127.0.0.1:1" in str(info.value)


async def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = create_engine(url=sqlite_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()
