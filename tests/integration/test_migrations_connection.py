"""The migration connection: the configured timeouts, a 5 s lock_timeout by default, and
no request statement_timeout."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from qxdb.migrations.connection import migration_engine
from qxdb.settings import DatabaseSettings


async def _show(url: str, ddl: float | None = None, **configured: int) -> tuple[str, str]:
    engine = migration_engine(DatabaseSettings(url=url, **configured), ddl_lock_timeout=ddl)
    try:
        async with engine.connect() as conn:
            lock = (await conn.execute(text("SHOW lock_timeout"))).scalar_one()
            statement = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
            return str(lock), str(statement)
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_configured_timeouts_apply_and_the_request_default_does_not(db_url: str) -> None:
    # DatabaseSettings defaults statement_timeout_ms to 10 s for requests; migrations
    # (index builds) must not inherit it unless it was set on purpose.
    # lock_timeout defaults to 5 s for migrations, so DDL never queues readers for long.
    assert await _show(db_url) == ("5s", "0")
    assert await _show(db_url, ddl=0.75) == ("750ms", "0")
    assert await _show(db_url, ddl=0) == ("0", "0")
    assert await _show(db_url, lock_timeout_ms=1500, statement_timeout_ms=60_000) == (
        "1500ms",
        "1min",
    )


@pytest.mark.postgres_only
async def test_an_explicit_ddl_lock_timeout_beats_the_setting(db_url: str) -> None:
    assert await _show(db_url, ddl=2, lock_timeout_ms=1500) == ("2s", "0")
