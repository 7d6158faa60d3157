"""A failed migration names its revision, its statement, the database error and the state
it left, on both dialects, with and without a non-transactional step (issue 16, part 1)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect

from qxdb.migrations import DEFAULT_LOCK_RETRIES, init_project
from qxdb.migrations.connection import migration_engine
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from qxdb_cli import migrate as migrate_cli
from tests.cli.migrate_support import make_project, ok, one_error, run

FIRST = '''
"""create orders"""
import sqlalchemy as sa
from alembic import op

revision = "aaaa"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("qty", sa.Integer)
    )
    op.execute("INSERT INTO orders (id, qty) VALUES (1, 5)")


def downgrade() -> None:
    op.drop_table("orders")
'''

# The same id again: a primary-key violation on PostgreSQL and on SQLite alike.
SECOND = '''
"""add color"""
import sqlalchemy as sa
from alembic import op

revision = "bbbb"
down_revision = "aaaa"


def upgrade() -> None:
    op.add_column("orders", sa.Column("color", sa.String(20)))
{index}
    op.execute("INSERT INTO orders (id, qty) VALUES (1, 7)")


def downgrade() -> None:
    op.drop_index("ix_orders_color", "orders")
    op.drop_column("orders", "color")
'''
IN_TRANSACTION = '    op.create_index("ix_orders_color", "orders", ["color"])'
NON_TRANSACTIONAL = """\
    with op.get_context().autocommit_block():
        op.create_index("ix_orders_color", "orders", ["color"], postgresql_concurrently=True)"""


def _project(root: Path, *, non_transactional: bool) -> Path:
    package = make_project(root)
    result = init_project(metadata=f"{package}.models:metadata", project_root=root)
    versions = result.directory / "versions"
    (versions / "aaaa_orders.py").write_text(textwrap.dedent(FIRST))
    second = SECOND.format(index=NON_TRANSACTIONAL if non_transactional else IN_TRANSACTION)
    (versions / "bbbb_color.py").write_text(second)
    return root


def _columns_and_indexes(url: str) -> tuple[list[str], list[str]]:
    async def read() -> tuple[list[str], list[str]]:
        engine = migration_engine(DatabaseSettings(url=url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: (
                        [col["name"] for col in inspect(c).get_columns("orders")],
                        [str(ix["name"]) for ix in inspect(c).get_indexes("orders")],
                    )
                )
        finally:
            await engine.dispose()

    return run_coro(read())


@pytest.mark.parametrize("non_transactional", [False, True], ids=["transactional", "autocommit"])
def test_a_failed_revision_says_where_and_what_it_left(
    tmp_path: Path, db_url: str, non_transactional: bool
) -> None:
    project = _project(tmp_path, non_transactional=non_transactional)
    proc = run(project, "migrate", "up", url=db_url)
    line = one_error(proc, 1)  # exit 1 on both dialects: not "cannot connect" (3)
    assert "upgrade   aaaa  create orders" in proc.stdout  # the revision before was applied
    assert "revision bbbb (add color) failed:" in line
    assert "SQLSTATE 23505" in line or "SQLITE_CONSTRAINT" in line
    assert "statement: INSERT INTO orders (id, qty) VALUES (1, 7)" in line
    assert "the database is at aaaa; bbbb not applied" in line

    columns, indexes = _columns_and_indexes(db_url)
    if non_transactional:
        assert (
            "bbbb ran non-transactional steps before failing: column orders.color and "
            "index ix_orders_color exist — check before re-running"
        ) in line
        assert "color" in columns and "ix_orders_color" in indexes
    else:
        assert "non-transactional" not in line
        assert "color" not in columns and "ix_orders_color" not in indexes

    state = ok(run(project, "migrate", "current", "--json", url=db_url))
    assert [r["revision"] for r in json.loads(state.stdout)["current"]] == ["aaaa"]


def test_json_carries_the_same_report(tmp_path: Path, db_url: str) -> None:
    project = _project(tmp_path, non_transactional=True)
    proc = run(project, "migrate", "up", "--json", url=db_url)
    line = one_error(proc, 1)
    document = json.loads(proc.stdout)  # the whole stdout is one JSON document
    assert document["ok"] is False
    assert document["error"]["type"] == "RevisionFailedError"
    assert document["error"]["code"] == "migration.revision_failed"
    failure = document["error"]["details"]["failure"]
    assert document["error"]["message"] in line
    assert failure["revision"] == "bbbb"
    assert failure["code"] in {"23505", "SQLITE_CONSTRAINT_PRIMARYKEY"}
    assert failure["statement"] == "INSERT INTO orders (id, qty) VALUES (1, 7)"
    assert failure["applied"] == ["aaaa"] and failure["after"] == ["aaaa"]
    assert failure["persisted"] == ["column orders.color", "index ix_orders_color"]
    assert failure["transactional"] is False


def test_a_rerun_after_a_non_transactional_failure_names_the_revision(
    tmp_path: Path, db_url: str
) -> None:
    project = _project(tmp_path, non_transactional=True)
    one_error(run(project, "migrate", "up", url=db_url), 1)
    line = one_error(run(project, "migrate", "up", url=db_url), 1)
    assert "revision bbbb (add color) failed:" in line
    assert "statement: ALTER TABLE orders ADD COLUMN color" in line


@pytest.mark.postgres_only
def test_atomic_keeps_nothing_of_the_run(tmp_path: Path, db_url: str) -> None:
    project = _project(tmp_path, non_transactional=False)
    line = one_error(run(project, "migrate", "up", "--atomic", url=db_url), 1)
    assert "the database is at base (no revision); bbbb not applied" in line
    assert "(atomic run: the 1 revision(s) before it were rolled back too)" in line
    state = ok(run(project, "migrate", "current", "--json", url=db_url))
    assert json.loads(state.stdout)["current"] == []


def test_an_exception_in_revision_code_names_the_revision(tmp_path: Path, sqlite_url: str) -> None:
    project = _project(tmp_path, non_transactional=False)
    second = project / "migrations" / "versions" / "bbbb_color.py"
    second.write_text(
        second.read_text().replace(
            '    op.execute("INSERT INTO orders (id, qty) VALUES (1, 7)")',
            '    raise RuntimeError("forgot the backfill")',
        )
    )
    line = one_error(run(project, "migrate", "up", url=sqlite_url), 1)
    assert "revision bbbb (add color) failed: RuntimeError: forgot the backfill" in line
    assert "statement:" not in line
    assert "the database is at aaaa; bbbb not applied" in line


def test_the_cli_default_retries_match_the_library() -> None:
    assert migrate_cli._DEFAULT_RETRIES == DEFAULT_LOCK_RETRIES


@pytest.mark.postgres_only
def test_a_failed_concurrent_index_names_the_invalid_index_it_left(
    tmp_path: Path, db_url: str
) -> None:
    project = _project(tmp_path, non_transactional=False)
    (project / "migrations" / "versions" / "bbbb_color.py").write_text(
        textwrap.dedent('''
        """unique qty"""
        from alembic import op

        revision = "bbbb"
        down_revision = "aaaa"


        def upgrade() -> None:
            op.execute("INSERT INTO orders (id, qty) VALUES (2, 5)")
            with op.get_context().autocommit_block():
                op.create_index(
                    "ux_orders_qty", "orders", ["qty"], unique=True, postgresql_concurrently=True
                )


        def downgrade() -> None:
            op.drop_index("ux_orders_qty", "orders")
        ''')
    )
    line = one_error(run(project, "migrate", "up", url=db_url), 1)
    assert "revision bbbb (unique qty) failed:" in line and "[SQLSTATE 23505]" in line
    assert "statement: CREATE UNIQUE INDEX CONCURRENTLY ux_orders_qty ON orders (qty)" in line
    assert (
        "bbbb ran non-transactional steps before failing: these stay done: the effects of "
        "INSERT INTO orders (id, qty) VALUES (2, 5) and invalid index ux_orders_qty "
        "(DROP INDEX CONCURRENTLY it) — check before re-running"
    ) in line
