"""The pieces of a failure report: shortened, secret-free statements and what a step left."""

from __future__ import annotations

from qxdb.migrations.failure import MigrationFailure, describe_statement, shorten_sql


def test_statements_are_one_short_line_without_secrets() -> None:
    url = "postgresql+asyncpg://deploy:s3cret-pw@db/app"
    sql = "ALTER ROLE app\n   WITH PASSWORD 'hunter2'  -- dblink 'postgresql://deploy:s3cret-pw@db'"
    text = shorten_sql(sql, url)
    assert "\n" not in text
    assert "hunter2" not in text and "s3cret-pw" not in text
    assert "PASSWORD '***'" in text
    long = shorten_sql("UPDATE orders SET note = " + "'x' || " * 100 + "'y'")
    assert len(long) == 160 and long.endswith("…")


def test_committed_statements_are_said_as_objects() -> None:
    assert describe_statement("ALTER TABLE orders ADD COLUMN color VARCHAR(20)") == (
        "column orders.color"
    )
    assert describe_statement('CREATE INDEX CONCURRENTLY "ix_a" ON orders (a)') == "index ix_a"
    assert describe_statement("CREATE UNIQUE INDEX ix_b ON orders (b)") == "index ix_b"
    assert describe_statement("CREATE TABLE IF NOT EXISTS t (id int)") == "table t"
    assert describe_statement("DROP INDEX CONCURRENTLY ix_old") == "index ix_old dropped"
    assert describe_statement("SELECT 1") is None
    assert describe_statement("show transaction isolation level") is None
    assert describe_statement("UPDATE orders SET qty = 0").startswith("the effects of UPDATE")


def _failure(**overrides: object) -> MigrationFailure:
    fields: dict[str, object] = {
        "revision": "bbbb",
        "revision_message": "add color",
        "direction": "upgrade",
        "error": "division by zero",
        "code": "22012",
        "statement": "UPDATE orders SET qty = qty / 0",
        "applied": ["aaaa"],
        "before": [],
        "after": ["aaaa"],
        "persisted": [],
        "atomic": False,
    }
    fields.update(overrides)
    return MigrationFailure(**fields)  # type: ignore[arg-type]


def test_the_sentence_names_revision_error_statement_and_state() -> None:
    assert _failure().sentence() == (
        "revision bbbb (add color) failed: division by zero [SQLSTATE 22012]; "
        "statement: UPDATE orders SET qty = qty / 0; the database is at aaaa; bbbb not "
        "applied (1 revision(s) before it were applied and kept)"
    )
    partial = _failure(persisted=["column orders.color", "index ix_orders_color"], applied=[])
    assert partial.sentence().endswith(
        "the database is at aaaa; bbbb not applied; bbbb ran non-transactional steps before "
        "failing: column orders.color and index ix_orders_color exist — check before re-running"
    )
    assert not partial.transactional and _failure().transactional


def test_a_failed_downgrade_says_not_undone() -> None:
    failure = _failure(direction="downgrade", after=["bbbb"], applied=["cccc"])
    assert failure.state_sentence() == (
        "the database is at bbbb; bbbb not undone (1 revision(s) before it were undone and kept)"
    )


def test_an_atomic_run_that_rolled_back_says_so() -> None:
    failure = _failure(atomic=True, before=[], after=[])
    assert failure.state_sentence() == (
        "the database is at base (no revision); bbbb not applied "
        "(atomic run: the 1 revision(s) before it were rolled back too)"
    )


def test_a_failure_before_any_revision_ran_names_the_run() -> None:
    failure = _failure(revision=None, revision_message="", applied=[], after=[], statement=None)
    assert failure.sentence() == (
        "the upgrade run failed: division by zero [SQLSTATE 22012]; "
        "the database is at base (no revision); the next revision not applied"
    )
