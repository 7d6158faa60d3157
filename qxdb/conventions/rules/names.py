"""Rules about names: the naming convention, and identifiers every dialect accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

from qxdb.conventions.naming import MAX_IDENTIFIER_BYTES, NamePattern, expected_name
from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import TableSnapshot

_SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")
_KIND_LABEL = {"pk": "primary key", "uq": "unique constraint", "fk": "foreign key",
               "ck": "check constraint", "ix": "index"}  # fmt: skip


def _named_objects(
    table: TableSnapshot, ctx: CheckContext, *, patterns: bool = True
) -> Iterator[tuple[str, str | None, NamePattern | None]]:
    """(kind, actual name, expected pattern) for every constraint and index; the pattern
    is None without ``patterns`` (building them is most of the cost on a big schema)."""
    naming, t = ctx.naming, table.name

    def pattern(key: str, **kw: object) -> NamePattern | None:
        template = naming.get(key) if patterns else None
        return expected_name(template, table=t, **kw) if template else None  # type: ignore[arg-type]

    if table.primary_key is not None:
        yield "pk", table.primary_key.name, pattern("pk", columns=table.primary_key.columns)
    for uq in table.uniques:
        yield "uq", uq.name, pattern("uq", columns=uq.columns)
    for fk in table.foreign_keys:
        yield (
            "fk",
            fk.name,
            pattern(
                "fk",
                columns=fk.columns,
                referred_table=fk.referred_table,
                referred_columns=fk.referred_columns,
            ),
        )
    for name in table.check_names:
        yield "ck", name, pattern("ck")
    for ix in table.indexes:
        # Explicit and partial indexes (ix_<table>_pending) keep a free suffix.
        yield "ix", ix.name, pattern("ix", columns=ix.columns, free_after_columns=True)


@rule(
    "QX010",
    "naming-convention",
    rationale="Deterministic constraint names let Alembic autogenerate, drop and rename them "
    "identically on every database.",
    hint="Build the metadata with make_metadata() and leave constraint names to it.",
)
def naming_convention(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A constraint or index name that does not follow the naming convention.

    Alembic autogenerate, ``drop_constraint`` and renames need the same name on every
    database; names invented by the database (``orders_pkey``, ``orders_code_key``)
    differ between dialects and versions.

    Fix: build the metadata with ``make_metadata()`` and leave names to its convention
    (``pk_<table>``, ``uq_<table>_<cols>``, ``fk_<table>_<cols>_<target>``, ``ix_…``).
    """
    for kind, name, expected in _named_objects(table, ctx):
        label = _KIND_LABEL[kind]
        if name is None:
            want = f"; expected {expected.describe()}" if expected else ""
            yield Violation(f"{label} has no name{want}")
        elif expected is not None and not expected.matches(name):
            yield Violation(f"{label} {name} should be named {expected.describe()}", name)


def _identifier_problem(name: str, *, reserved: bool, limit: bool = True) -> str | None:
    if limit and len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return (
            f"is {len(name.encode())} bytes long (PostgreSQL truncates at {MAX_IDENTIFIER_BYTES})"
        )
    if not _SNAKE.match(name):
        return "is not snake_case (lowercase letters, digits, underscores)"
    if reserved and name in RESERVED_WORDS:
        return "is a reserved word in SQL and must be quoted everywhere"
    return None


@rule(
    "QX011",
    "identifiers",
    rationale="Identifiers that need quoting, are reserved or get truncated break hand-written "
    "SQL, tools and migrations.",
    hint="Use short snake_case names that are not SQL keywords (e.g. orders, placed_by).",
)
def identifiers(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A table, column, constraint or index name that is hard to use.

    Names that need quoting (capitals, spaces), SQL reserved words, or names longer than
    PostgreSQL's 63 bytes (silently truncated, so two can collide) break hand-written
    SQL, tools and migrations.

    Fix: short snake_case names that are not keywords.
    """
    if problem := _identifier_problem(table.name, reserved=True):
        yield Violation(f"table name {table.name!r} {problem}", table.name)
    for column in table.columns:
        if problem := _identifier_problem(column, reserved=True):
            yield Violation(f"column {column!r} {problem}", column)
    # SQLite has no length limit, and SQLAlchemy shortens long convention names only
    # where there is one: on SQLite those names are legitimately long.
    limit = ctx.source != "sqlite"
    for kind, name, _ in _named_objects(table, ctx, patterns=False):
        if name is None:
            continue
        if problem := _identifier_problem(name, reserved=False, limit=limit):
            yield Violation(f"{_KIND_LABEL[kind]} {name!r} {problem}", name)
