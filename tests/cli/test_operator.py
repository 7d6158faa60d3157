"""The command under an operator's hands: a forgotten QX_DB__URL, URLs as people type
them, passwords hidden by the URL's structure, global options after the command, and
tables that fit an 80-column terminal. Every case runs the real `qxdb`.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from qxdb.ids import uuid7
from qxdb.outbox.table import outbox_table
from qxdb.testing.plugin import run_coro
from qxdb.testing.servers import free_port
from tests.cli.conftest import run_qxdb

FIRST = '''
"""create things"""
from alembic import op

revision = "a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE things (n int)")


def downgrade() -> None:
    op.execute("DROP TABLE things")
'''


def _error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


async def _fetchval(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


# -- a forgotten QX_DB__URL ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres_only
def test_a_forgotten_url_in_a_postgresql_project_touches_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "models.py").write_text("from sqlalchemy import MetaData\nmetadata = MetaData()\n")
    # migrate init records the dialect of the URL in effect.
    init = run_qxdb(
        "migrate", "init", "--metadata", "models:metadata", url=postgres_url, cwd=tmp_path
    )
    assert init.returncode == 0, init.stderr
    assert "this project is for postgresql" in init.stderr
    assert "dialect = postgresql" in (tmp_path / "migrations" / "alembic.ini").read_text()
    (tmp_path / "migrations" / "versions" / "a1.py").write_text(textwrap.dedent(FIRST))

    for argv in (
        ["migrate", "up"],
        ["migrate", "stamp", "head"],
        ["migrate", "down", "base", "--yes"],
        ["migrate", "current"],
        ["outbox", "replay", "--status", "failed", "--yes"],
        ["outbox", "purge", "--older-than", "7d", "--yes"],
        ["outbox", "stats"],
        ["doctor"],
    ):
        line = _error_line(run_qxdb(*argv, cwd=tmp_path), 2)
        assert "QX_DB__URL is not set" in line, argv
        assert "this project is for postgresql (migrations/alembic.ini)" in line
        assert "--database-url" in line
        assert not (tmp_path / "qxdb.sqlite3").exists(), argv
    applied = (
        "SELECT to_regclass('alembic_version') IS NOT NULL OR to_regclass('things') IS NOT NULL"
    )
    assert run_coro(_fetchval(postgres_url, applied)) is False

    # The URL as hosting providers hand it out (libpq's spelling) is read as asyncpg.
    libpq = postgres_url.replace("postgresql+asyncpg://", "postgres://", 1)
    up = run_qxdb("migrate", "up", url=libpq, cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "postgres:// read as postgresql+asyncpg://" in up.stderr
    assert run_coro(_fetchval(postgres_url, "SELECT version_num FROM alembic_version")) == "a1"
    plain = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    current = run_qxdb("migrate", "current", "--json", url=plain, cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert [r["revision"] for r in json.loads(current.stdout)["current"]] == ["a1"]

    # An explicit SQLite URL is a choice, and stays easy.
    explicit = run_qxdb(
        "--database-url", "sqlite+aiosqlite:///./try.sqlite3", "migrate", "up", cwd=tmp_path
    )
    assert explicit.returncode == 0, explicit.stderr
    assert (tmp_path / "try.sqlite3").exists()


@pytest.mark.slow
def test_reading_commands_never_create_a_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text("from sqlalchemy import MetaData\nmetadata = MetaData()\n")
    init = run_qxdb("migrate", "init", "--metadata", "models:metadata", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "dialect = sqlite" in (tmp_path / "migrations" / "alembic.ini").read_text()
    for argv in (
        ["doctor"],
        ["migrate", "current"],
        ["migrate", "check"],
        ["outbox", "stats"],
        ["outbox", "inspect"],
        ["outbox", "replay", "--status", "all", "--dry-run"],
        ["schema", "check", "--database"],
    ):
        line = _error_line(run_qxdb(*argv, cwd=tmp_path), 3)
        assert f"no database at {tmp_path.resolve() / 'qxdb.sqlite3'}" in line, argv
        assert "nothing was created" in line
        assert not (tmp_path / "qxdb.sqlite3").exists(), argv
    # A SQLite project may still be built on the embedded default.
    up = run_qxdb("migrate", "up", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "qxdb.sqlite3").exists()


# -- URLs and options as people type them ------------------------------------------------


def test_global_options_after_the_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    (tmp_path / "db.sqlite3").touch()
    after = run_qxdb("doctor", "--json", "--database-url", url, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["url"] == url
    equals = run_qxdb("doctor", f"--database-url={url}", "--json", cwd=tmp_path)
    assert equals.returncode == 0, equals.stderr
    # A global option before the command keeps working, and its value is not a command.
    before = run_qxdb("--database-url", url, "doctor", "--json", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    debug = run_qxdb(
        "outbox", "stats", "--debug", "--database-url", url, cwd=tmp_path
    )  # no outbox table: --debug after the command shows the traceback
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("password", "hidden"),
    [
        # user == password: masking by string replacement hid the scheme and the user.
        ("postgres", ["postgres:postgres@"]),
        # An unencoded "@" (and "/") in the password: it must not leak in part.
        ("p@ss/w0rd", ["p@ss", "ss/w0rd", "w0rd"]),
    ],
    ids=["user-equals-password", "at-sign-in-password"],
)
def test_passwords_are_masked_by_the_url_structure(
    password: str, hidden: list[str], tmp_path: Path
) -> None:
    port = free_port()
    url = f"postgresql+asyncpg://postgres:{password}@127.0.0.1:{port}/x"
    shown = f"postgresql+asyncpg://postgres:***@127.0.0.1:{port}/x"
    result = run_qxdb(
        "doctor", "--database-url", url, env={"QX_DB__CONNECT_TIMEOUT_SECONDS": "3"}, cwd=tmp_path
    )
    text = result.stdout + result.stderr
    for fragment in hidden:
        assert fragment not in text
    # Everything that is not the password stays exactly as written.
    if "@" in password:
        # SQLAlchemy would read the password up to the first "@" and take the rest for a
        # host: refused as bad input, before connecting anywhere.
        line = _error_line(result, 2)
        assert f"invalid database URL '{shown}'" in line
        assert "unencoded '@'" in line
    else:
        _error_line(result, 3)
        assert f"database: {shown}" in result.stderr
        assert f"cannot connect to {shown}" in text


# -- 80 columns --------------------------------------------------------------------------


def _seed(url: str, count: int) -> list[UUID]:
    from sqlalchemy import insert

    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    table = outbox_table()
    now = datetime.now(UTC)
    ids = [uuid7() for _ in range(count)]
    rows = [
        {
            "id": row_id,
            "event_name": "shop.fulfilment.order.placed_with_a_rather_long_name",
            "event_version": 1,
            "payload": {"event_id": str(uuid7()), "n": i},
            "occurred_at": now - timedelta(minutes=i),
            "tenant_id": UUID(int=i + 1) if i % 2 else None,
            "attempts": 3,
            "last_error": "broker timeout after 5 s: nats: no responders available for request",
        }
        for i, row_id in enumerate(ids)
    ]

    async def seed() -> None:
        engine = create_engine(DatabaseSettings(), url=url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.create_all)
                await conn.execute(insert(table), rows)
        finally:
            await engine.dispose()

    run_coro(seed())
    return ids


def test_outbox_tables_fit_80_columns(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ops.sqlite3'}"
    ids = _seed(url, 1_234)
    narrow = {"COLUMNS": "80"}
    inspect = run_qxdb("outbox", "inspect", "-n", "20", url=url, env=narrow)
    assert inspect.returncode == 0, inspect.stderr
    lines = inspect.stdout.splitlines()
    assert len(lines) == 21  # a header and one line per row: nothing wrapped
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split()[:2] == ["id", "event"]
    # Long names end in "…" on their line instead of wrapping onto the next.
    # A long event name loses its middle, so its start and its end stay readable.
    assert "failed" in lines[1] and "shop." in lines[1] and "long_name" in lines[1]
    assert "…" in lines[1]
    assert f"…{str(ids[0])[-8:]}" in inspect.stdout
    assert str(ids[0]) not in inspect.stdout  # whole ids need --wide or --json
    # The "next page" hint still carries a whole id to paste.
    assert "more rows: add --after " in inspect.stderr

    wide = run_qxdb("outbox", "inspect", "-n", "20", "--wide", url=url, env=narrow)
    assert wide.returncode == 0, wide.stderr
    assert str(ids[0]) in wide.stdout
    assert len(wide.stdout.splitlines()) == 21
    as_json = run_qxdb("outbox", "inspect", "-n", "1", "--json", url=url, env=narrow)
    assert json.loads(as_json.stdout)["rows"][0]["id"] == str(ids[0])

    # The replay plan: its sample fits too, and counts carry thousands separators.
    plan = run_qxdb("outbox", "replay", "--status", "failed", "--dry-run", url=url, env=narrow)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("1,234 outbox rows match status=failed")
    assert all(len(line) <= 80 for line in plan.stdout.splitlines())
    stats = run_qxdb("outbox", "stats", "--exact", url=url, env=narrow)
    assert "pending    1,234 (failed 1,234)" in stats.stdout
    assert all(len(line) <= 80 for line in stats.stdout.splitlines())

    # show takes --json like every reading command.
    show = run_qxdb("outbox", "show", str(ids[0]), "--json", url=url)
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["status"] == "failed"
