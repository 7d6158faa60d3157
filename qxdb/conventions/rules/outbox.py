"""The outbox table must have the shape the relay and ``qxdb outbox`` rely on."""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import TableSnapshot


@rule(
    "QX015",
    "outbox-shape",
    rationale="The relay, the recorder and qxdb outbox read and write these exact columns and "
    "use the pending indexes.",
    hint="Declare the table with include_outbox_table(metadata, name) and migrate to it.",
    scope="outbox",
)
def outbox_shape(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An outbox table that differs from the shape the relay relies on.

    The recorder, the relay and ``qxdb outbox`` read and write these exact columns and
    use the partial "pending" indexes; a missing column or index fails at run time, a
    missing index makes every relay poll scan the log.

    Fix: declare it with ``include_outbox_table(metadata, name)`` and migrate to it.
    """
    reference = ctx.outbox_shape(table.name)
    for name, want in reference.columns.items():
        have = table.columns.get(name)
        if have is None:
            yield Violation(f"column {name} ({want.type.label()}) is missing", name)
            continue
        if not have.type.same_as(want.type):
            yield Violation(f"{name} is {have.type.label()}, expected {want.type.label()}", name)
        if have.nullable != want.nullable:
            expected = "nullable" if want.nullable else "NOT NULL"
            yield Violation(f"{name} should be {expected}", name)
    if table.partition_key and table.partition_key != ("recorded_at",):
        yield Violation(
            f"partitioned by ({', '.join(table.partition_key)}): an outbox is partitioned "
            "by recorded_at (include_outbox_table(..., partitioned=True))"
        )
    # The partitioned layout's key holds its partition key (qxdb.outbox.partitions).
    want_key = ("id", "recorded_at") if table.partition_key == ("recorded_at",) else ("id",)
    if table.primary_key is None or table.primary_key.columns != want_key:
        yield Violation(f"primary key should be ({', '.join(want_key)})")
    present = {ix.name for ix in table.indexes}
    for ix in reference.indexes:
        if ix.name not in present:
            yield Violation(f"index {ix.name} ({', '.join(ix.columns)}) is missing", ix.name)
