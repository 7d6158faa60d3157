"""Rules about foreign keys: indexed, typed like their target, explicit ON DELETE."""

from __future__ import annotations

from collections.abc import Iterator

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
    for fk in table.foreign_keys:
        if fk.ondelete is None or fk.ondelete.strip().upper() == "NO ACTION":
            yield Violation(f"foreign key {_label(fk)} declares no ON DELETE action", fk.name)
