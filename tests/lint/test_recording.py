"""Recording revisions offline: batch mode, Core constructs, helpers, the offline SQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qxdb.errors import ValidationError
from qxdb.migrations.lint import lint_files, lint_revisions


def revision(tmp_path: Path, body: str, name: str = "r1") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "{name}"\ndown_revision = None\n\n\n' + textwrap.dedent(body).strip() + "\n"
    )
    return path


def findings(path: Path) -> list[tuple[int, str, str]]:
    report = lint_files([path])
    return [(f.line, f.rule_id, f.subject) for f in report.findings]


def test_batch_operations_are_recorded_with_their_table_and_line(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.execute("SET lock_timeout = '1s'")
            with op.batch_alter_table("orders") as batch:
                batch.alter_column("status", new_column_name="state")
                batch.create_index("ix_orders_state", ["state"])
        """,
    )
    assert findings(path) == [
        (11, "QXM010", "orders.status"),
        (12, "QXM001", "index ix_orders_state on orders"),
    ]


def test_core_constructs_and_the_bind_are_read_as_sql(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        orders = sa.table("orders", sa.column("status"), sa.column("id"))


        def upgrade() -> None:
            op.execute(orders.update().values(status="new"))
            op.get_bind().execute(orders.delete().where(orders.c.id < 100))
        """,
    )
    assert findings(path) == [(12, "QXM021", "orders")]


def test_a_helper_in_the_revision_reports_the_line_inside_it(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        def _index(table: str, column: str) -> None:
            op.create_index(f"ix_{table}_{column}", table, [column])


        def upgrade() -> None:
            op.execute("SET lock_timeout = '1s'")
            _index("orders", "placed_at")
        """,
    )
    assert findings(path) == [(9, "QXM001", "index ix_orders_placed_at on orders")]


def test_a_revision_without_upgrade_or_that_fails_is_reported_not_guessed(tmp_path: Path) -> None:
    missing = revision(tmp_path, "x = 1", name="no_upgrade")
    assert [rule for _line, rule, _s in findings(missing)] == ["QXM025"]
    failing = revision(
        tmp_path,
        """
        def upgrade() -> None:
            raise RuntimeError("needs the network")
        """,
        name="fails",
    )
    report = lint_files([failing])
    (finding,) = report.findings
    assert finding.rule_id == "QXM025"
    assert finding.line == 9
    assert "RuntimeError: needs the network" in finding.message


def test_offline_sql_commits_around_autocommit_blocks(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.add_column("orders", sa.Column("note", sa.Text()))
            with op.get_context().autocommit_block():
                op.create_index(
                    "ix_orders_note", "orders", ["note"], postgresql_concurrently=True
                )
        """,
    )
    (lint,) = lint_files([path], emit_sql=True).revisions
    assert lint.sql is not None
    statements = [s.strip() for s in lint.sql.split(";") if s.strip()]
    assert statements == [
        "BEGIN",
        "ALTER TABLE orders ADD COLUMN note TEXT",
        "COMMIT",
        "CREATE INDEX CONCURRENTLY ix_orders_note ON orders (note)",
        "BEGIN",
        "COMMIT",
    ]
    assert lint.operations == 2


def test_set_local_lock_timeout_ends_with_the_transaction(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.execute("SET LOCAL lock_timeout = '1s'")
            op.add_column("orders", sa.Column("a", sa.Text()))
            with op.get_context().autocommit_block():
                op.create_index("ix_orders_a", "orders", ["a"], postgresql_concurrently=True)
            op.add_column("orders", sa.Column("b", sa.Text()))
        """,
    )
    assert findings(path) == [(13, "QXM022", "orders")]


def test_generated_and_identity_columns_rewrite_an_existing_table(tmp_path: Path) -> None:
    path = revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.execute("SET lock_timeout = '1s'")
            op.add_column("orders", sa.Column("total2", sa.Numeric(), sa.Computed("total * 2")))
            op.add_column("orders", sa.Column("seq", sa.BigInteger(), sa.Identity()))
            op.execute("ALTER TABLE orders ADD COLUMN n serial")
        """,
    )
    assert [(line, rule) for line, rule, _s in findings(path)] == [
        (10, "QXM008"),
        (11, "QXM008"),
        (12, "QXM008"),
    ]


def test_a_project_whose_revision_does_not_import_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nscript_location = {tmp_path}\n")
    (tmp_path / "versions" / "r1.py").write_text('revision = "r1"\ndown_revision = None\n(\n')
    with pytest.raises(ValidationError, match="cannot load the revisions: SyntaxError"):
        lint_revisions(config=tmp_path / "alembic.ini", all_revisions=True)


def test_linting_leaves_the_op_proxy_and_logging_as_they_were(tmp_path: Path) -> None:
    import logging

    from alembic import op as alembic_op
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    path = revision(
        tmp_path,
        """
        def upgrade() -> None:
            op.execute("UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id)")
        """,
    )
    context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True})
    mine = Operations(context)
    mine._install_proxy()
    try:
        assert findings(path) == [(9, "QXM021", "t")]
        assert alembic_op._proxy is mine  # type: ignore[attr-defined]
    finally:
        mine._remove_proxy()
    assert logging.getLogger("sqlglot").level == logging.NOTSET


@pytest.mark.parametrize(
    ("env_py", "expected"),
    [
        ("from qxdb.migrations.env import run_async_migrations\nrun_async_migrations()\n", []),
        ("from alembic import context\n", ["QXM022"]),
    ],
)
def test_a_qxdb_env_py_provides_the_lock_timeout(
    tmp_path: Path, env_py: str, expected: list[str]
) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "alembic.ini").write_text(f"[alembic]\nscript_location = {tmp_path}\n")
    (tmp_path / "env.py").write_text(env_py)
    revision(
        tmp_path / "versions",
        """
        def upgrade() -> None:
            op.add_column("orders", sa.Column("note", sa.Text()))
        """,
    )
    report = lint_revisions(config=tmp_path / "alembic.ini", all_revisions=True)
    assert [f.rule_id for f in report.findings] == expected
    assert (report.lock_timeout_source is not None) == (not expected)


def test_revisions_asking_alembic_context_take_the_offline_branch(tmp_path: Path) -> None:
    import alembic.context

    path = revision(
        tmp_path,
        """
        from alembic import context


        def upgrade() -> None:
            op.execute("SET lock_timeout = '1s'")
            if context.is_offline_mode():
                op.execute("DELETE FROM sessions")
            else:
                count = op.get_bind().execute(sa.text("SELECT count(*) FROM t")).scalar()
            extra = context.get_x_argument(as_dictionary=True)
            op.create_index("ix_t_a", "t", ["a"], postgresql_where=sa.text(str(extra)))
        """,
    )
    before = vars(alembic.context).get("_proxy")
    assert [(line, rule) for line, rule, _s in findings(path)] == [
        (14, "QXM021"),
        (14, "QXM023"),
        (18, "QXM001"),
    ]
    assert vars(alembic.context).get("_proxy") is before
