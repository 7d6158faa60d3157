"""Rules about foreign keys: indexed, typed like their target, explicit ON DELETE."""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions.findings import Severity
from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import ForeignKeyInfo, TableSnapshot


def _label(fk: ForeignKeyInfo) -> str:
    return fk.name or f"({', '.join(fk.columns)}) -> {fk.referred_table}"


@rule(
    "QX007",
    "fk-indexed",
    rationale="PostgreSQL does not index the referencing side: joins and every delete of a "
    "parent row scan the child table.",
    hint="Declare the column with index=True, or lead an index with the key's columns.",
)
def fk_indexed(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A foreign key whose columns lead no index.

    PostgreSQL indexes the referenced side of a key, never the referencing one. Joins
    from parent to children, and every delete or key update of a parent (which must find
    its children), then scan the child table -- under a lock.

    Fix: ``index=True`` on the column, or an index led by the key's columns (a partial
    index does not count).
    """
    for fk in table.foreign_keys:
        if not table.leads(fk.columns):
            yield Violation(
                f"foreign key {_label(fk)} has no index leading with ({', '.join(fk.columns)})",
                fk.name,
            )


@rule(
    "QX008",
    "fk-type-match",
    rationale="A key typed unlike its target forces casts in every join and hides bad data.",
    hint="Give the column exactly the referenced column's type (UUIDType() for ids).",
)
def fk_type_match(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A foreign key column typed unlike the column it references.

    A ``varchar(50)`` referencing a ``varchar(100)`` cannot hold every parent key; an
    ``integer`` referencing a ``bigint`` breaks once the parent outgrows it; mixed types
    force casts in every join.

    Fix: give the column exactly the referenced column's type (``UUIDType()`` for ids).
    """
    for fk in table.foreign_keys:
        target = ctx.tables.get(fk.referred_table)
        if target is None:
            continue  # outside the checked set: nothing to compare with
        for name, referred in zip(fk.columns, fk.referred_columns, strict=False):
            mine, theirs = table.columns.get(name), target.columns.get(referred)
            if mine is None or theirs is None or mine.type.same_as(theirs.type):
                continue
            yield Violation(
                f"{name} is {mine.type.label()} but {fk.referred_table}.{referred} "
                f"is {theirs.type.label()}",
                name,
            )


@rule(
    "QX009",
    "fk-on-delete",
    rationale="What happens to children when a parent goes is a decision; NO ACTION, the "
    "default, is indistinguishable from forgetting.",
    hint='Pass ondelete="CASCADE", "RESTRICT" or "SET NULL" to ForeignKey.',
)
def fk_on_delete(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A foreign key with no ON DELETE action (NO ACTION counts as none).

    What happens to the children when a parent goes is a design decision; the default
    NO ACTION cannot be told apart from forgetting it, in the model or in the database.

    Fix: ``ForeignKey(..., ondelete="CASCADE" | "RESTRICT" | "SET NULL")``.
    """
    for fk in table.foreign_keys:
        if fk.ondelete is None or fk.ondelete.strip().upper() == "NO ACTION":
            yield Violation(f"foreign key {_label(fk)} declares no ON DELETE action", fk.name)


@rule(
    "QX019",
    "primary-key",
    rationale="Without a primary key rows cannot be addressed one by one: logical replication "
    "refuses UPDATE and DELETE, ORMs cannot map the table, duplicates creep in.",
    hint="Add one: ALTER TABLE <table> ADD PRIMARY KEY (id) (uuid_column in a model).",
)
def primary_key(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A table without a primary key.

    Logical replication (and tools built on it: Debezium, pglogical, blue/green upgrades)
    needs a replica identity, normally the primary key, to send UPDATE and DELETE; without
    one those statements fail on a published table. SQLAlchemy cannot map such a table,
    and nothing stops two identical rows. A unique index over NOT NULL columns would do
    for replication, but it is only a key by convention.

    Fix: ``ALTER TABLE events ADD COLUMN id uuid; … backfill …; ALTER TABLE events ADD
    PRIMARY KEY (id);`` (in a model: ``uuid_column("id", primary_key=True)``). On a big
    table build a unique index CONCURRENTLY first and attach it with
    ``ADD CONSTRAINT pk_events PRIMARY KEY USING INDEX …``.
    """
    if table.primary_key is None:
        yield Violation("table has no primary key")


@rule(
    "QX025",
    "duplicate-fk",
    rationale="Two foreign keys on the same columns to the same target check every write "
    "twice and double the lock traffic on the parent.",
    hint="Drop the extra constraint: ALTER TABLE <table> DROP CONSTRAINT <name>.",
    severity=Severity.WARNING,
)
def duplicate_fk(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A foreign key that repeats another one of the same table.

    Usually the trace of a migration run twice under different names, or of a
    hand-written constraint next to a generated one. Each copy installs its own triggers,
    so every insert and update of the child checks the parent twice, and every delete of a
    parent runs the action twice; the copies can even disagree on ON DELETE.

    Fix: keep the one with the conventional name and the intended ON DELETE, and
    ``ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey1;``.
    """
    seen: dict[tuple[tuple[str, ...], str, tuple[str, ...]], ForeignKeyInfo] = {}
    for fk in table.foreign_keys:
        key = (fk.columns, fk.referred_table, fk.referred_columns)
        first = seen.setdefault(key, fk)
        if first is not fk:
            yield Violation(
                f"foreign key {_label(fk)} repeats {_label(first)} "
                f"({', '.join(fk.columns)}) -> {fk.referred_table}",
                fk.name,
            )
