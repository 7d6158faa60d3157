"""ACME's schema rules: the ten-line plugin of docs/schema.md, plus one that asks the live
database a question of its own."""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions import CheckContext, Severity, TableSnapshot, Violation, define_rule


@define_rule(
    "ACME001",
    "no-tmp-tables",
    rationale="Scratch tables left behind by imports hold stale copies of real data.",
    hint="Drop the table, or rename it if it is real.",
)
def no_tmp_tables(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """Tables named tmp_* are scratch space of one-off imports; none should outlive them."""
    if table.name.startswith("tmp_"):
        yield Violation(f"{table.name} looks like a leftover scratch table")


@define_rule(
    "ACME002",
    "table-comment",
    rationale="A comment on each table tells the next engineer what it holds.",
    hint="COMMENT ON TABLE <table> IS '…';",
    severity=Severity.WARNING,
    sources=("postgresql",),
)
def table_comment(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """Every live table carries a COMMENT (read with the check's own connection)."""
    from sqlalchemy import text

    assert ctx.connection is not None
    comment = ctx.connection.execute(
        text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": table.name}
    ).scalar()
    if not comment:
        yield Violation(f"{table.name} has no COMMENT")


@define_rule("ACME003", "crashes", rationale="A rule with a bug.", hint="Fix the plugin.")
def crashes(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """Fails on every table, as a buggy plugin would."""
    yield Violation(str(1 / len(table.name[:0])))


RULES = [no_tmp_tables, table_comment]
NOT_A_RULE = "nothing to see"
BUGGY = [crashes]
