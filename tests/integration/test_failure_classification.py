"""One answer to "is the database unreachable, or did a statement fail?", on both dialects.

The library (connect_checked, the migration runner) and the command (exit 3 or not) ask
the same function, with the real errors of the real drivers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import DatabaseUnavailableError, create_engine
from qxdb.core.failures import is_unavailable
from qxdb.engine import connect_checked
from qxdb_cli.errors import EXIT_FINDINGS, EXIT_UNAVAILABLE, exit_code_for


async def _failure(engine: AsyncEngine, sql: str) -> BaseException:
    async with engine.connect() as conn:
        try:
            await conn.execute(text(sql))
        except Exception as exc:
            return exc
    raise AssertionError(f"{sql!r} did not fail")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM no_such_table",
        "SELEKT 1",
        "SELECT 1/0",  # PostgreSQL: division by zero; SQLite: NULL, so it must not pass
    ],
)
async def test_a_failed_statement_is_not_unreachable(engine: AsyncEngine, sql: str) -> None:
    if sql == "SELECT 1/0" and engine.dialect.name == "sqlite":
        sql = "INSERT INTO no_such_table VALUES (1)"
    exc = await _failure(engine, sql)
    assert not is_unavailable(exc)
    # The command: a statement that failed is "the operation failed" (exit 1), not
    # "cannot connect" (exit 3, what SQLite's OperationalError got) nor a bug (70).
    assert exit_code_for(exc) == EXIT_FINDINGS


# aiosqlite's worker thread answers a failed connect late; the command quiets it likewise.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_unreachable_sqlite_file(tmp_path: Path) -> None:
    engine = create_engine(url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    try:
        with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
            async with connect_checked(engine):
                pass
        with pytest.raises(Exception) as raw:  # noqa: PT011 - the driver's own error
            async with engine.connect():
                pass
        assert is_unavailable(raw.value)
        assert exit_code_for(raw.value) == EXIT_UNAVAILABLE
    finally:
        await engine.dispose()


async def test_unreachable_postgresql(postgres_url: str) -> None:
    base, _, _ = postgres_url.rpartition("/")
    cases = [
        base + "/qxdb_no_such_database_here",  # SQLSTATE 3D000
        "postgresql+asyncpg://postgres@127.0.0.1:1/x",  # connection refused
    ]
    for url in cases:
        engine = create_engine(url=url)
        try:
            with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
                async with connect_checked(engine):
                    pass
            with pytest.raises(Exception) as raw:  # noqa: PT011 - the driver's own error
                async with engine.connect():
                    pass
            assert is_unavailable(raw.value), url
            assert exit_code_for(raw.value) == EXIT_UNAVAILABLE
        finally:
            await engine.dispose()
