"""Rules about indexes that cost writes and space without serving any read."""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions.findings import Severity
from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import KeyInfo, TableSnapshot

_KIND_ORDER = {"primary": 0, "unique": 1, "index": 2}


def _order(key: KeyInfo) -> tuple[int, str]:
    return _KIND_ORDER[key.kind], key.name or ""


def _covered_by(a: KeyInfo, b: KeyInfo) -> bool:
    """Does ``b`` make ``a`` redundant? Same predicate, ``a``'s columns lead ``b``,
    and ``a`` adds no uniqueness that ``b`` does not already enforce."""
    if a.where != b.where or b.columns[: len(a.columns)] != a.columns:
        return False
    if a.method != b.method:
        return False  # a GIN or GiST index answers other operators than a btree
    if a.unique and not (b.unique and b.columns == a.columns):
        return False
    if a.columns == b.columns and a.unique == b.unique:
        return _order(b) < _order(a)  # exact duplicates: report only the second one
    return True


@rule(
    "QX014",
    "redundant-index",
    rationale="An index that is a leading prefix of another serves no query the other cannot, "
    "and slows every write.",
    hint="Drop the shorter index; the longer one (or the primary key) serves its queries.",
    severity=Severity.WARNING,
)
def redundant_index(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An index (or unique constraint) that another one makes redundant.

    An index whose columns are the leading columns of another with the same access
    method and the same partial predicate serves no query the longer one cannot, yet
    every write maintains both. Exact duplicates are reported once; an index that adds
    uniqueness is kept; a GIN or GiST index is never covered by a btree.

    Fix: drop the shorter index in a migration (``DROP INDEX CONCURRENTLY`` live).
    """
    keys = table.keys
    for a in [*table.uniques, *table.indexes]:
        for b in keys:
            if b is not a and _covered_by(a, b):
                what = "primary key" if b.kind == "primary" else (b.name or "an unnamed index")
                yield Violation(
                    f"{a.name or 'unnamed index'} ({', '.join(a.columns)}) is covered by "
                    f"{what} ({', '.join(b.columns)})",
                    a.name,
                )
                break
