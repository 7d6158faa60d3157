"""Rules about keys and columns: UUID ids, audit and soft-delete columns, column types."""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions.findings import Severity
from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import ColumnInfo, TableSnapshot

INTEGER_KINDS = frozenset({"smallint", "integer", "bigint"})


@rule(
    "QX001",
    "pk-uuid-id",
    rationale="One UUID v7 key named id: time-ordered, merge-safe, and what Repository expects.",
    hint='Declare the key with uuid_column("id", primary_key=True).',
)
def pk_uuid_id(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A primary key other than one UUID column named ``id``.

    ``Repository`` addresses rows by ``id``; UUID v7 keys are made by the application
    before the insert (so an aggregate and its outbox events can refer to each other in
    one transaction), sort by creation time (good index locality), and never collide
    when data from two databases meets. Composite and natural keys make every foreign
    key, cursor and URL carry several values.

    Fix: ``uuid_column("id", primary_key=True)``; keep a natural key as a unique
    constraint beside it. A table without any key is QX019's finding. A partitioned table
    (PostgreSQL) may add its partition key's columns after ``id``, as it must.
    """
    pk = table.primary_key
    if pk is None:
        return  # a missing key is QX019's finding
    # A partitioned table's key must hold its partition key (PostgreSQL's rule): id
    # plus those columns is still "one id".
    partitioned = bool(table.partition_key) and (
        pk.columns[:1] == ("id",) and set(pk.columns[1:]) == set(table.partition_key)
    )
    if pk.columns != ("id",) and not partitioned:
        yield Violation(
            f"primary key is ({', '.join(pk.columns)}), not the single column id", pk.name
        )
        return
    column = table.columns.get("id")
    if column is not None and column.type.kind != "uuid":
        yield Violation(f"primary key id is {column.type.label()}, not a UUID", "id")


def _kind_problem(column: ColumnInfo, kinds: frozenset[str], what: str) -> str | None:
    if column.type.kind not in kinds:
        return f"{column.name} is {column.type.label()}, not {what}"
    return None


_TIMESTAMP = frozenset({"timestamp"})
_UUID = frozenset({"uuid"})
# name -> (accepted kinds, what they are called, must be NOT NULL)
_AUDIT: dict[str, tuple[frozenset[str], str, bool]] = {
    "created_at": (_TIMESTAMP, "a timestamp", True),
    "updated_at": (_TIMESTAMP, "a timestamp", False),
    "created_by": (_UUID, "a UUID", False),
    "updated_by": (_UUID, "a UUID", False),
    "version": (INTEGER_KINDS, "an integer", True),
}


@rule(
    "QX002",
    "audit-columns",
    rationale="Every row says when and by whom it was made and changed, and carries a version "
    "for optimistic locking.",
    hint="Add *standard_audit_columns() to the table.",
    scope="entity",
)
def audit_columns(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An entity table without the audit columns, or with them mistyped.

    ``created_at``/``updated_at`` (timestamps with time zone), ``created_by``/
    ``updated_by`` (UUIDs) and ``version`` (an integer, for optimistic locking:
    ``Repository.save`` refuses a stale write by comparing it) are what the repository
    fills and reads. ``created_at`` and ``version`` must be NOT NULL.

    Fix: add ``*standard_audit_columns()`` to the table (and migrate).
    """
    for name, (kinds, what, not_null) in _AUDIT.items():
        column = table.columns.get(name)
        if column is None:
            yield Violation(f"audit column {name} is missing", name)
            continue
        problem = _kind_problem(column, kinds, what)
        if problem:
            yield Violation(problem, name)
        if not_null and column.nullable:
            yield Violation(f"{name} is nullable; it must be NOT NULL", name)


@rule(
    "QX003",
    "soft-delete-complete",
    rationale="A soft delete records when and by whom, and live-row queries filter on "
    "deleted_at, so it needs an index.",
    hint="Use standard_audit_columns(include_deletion=True): deleted_at (indexed) and deleted_by.",
    scope="entity",
)
def soft_delete(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A half-built soft delete.

    Where ``deleted_at`` or ``deleted_by`` exists, both must: a nullable timestamp
    ``deleted_at`` that leads an index (every live-row query filters on it) and a UUID
    ``deleted_by``. A NOT NULL ``deleted_at`` would mean no row could be live.

    Fix: ``standard_audit_columns(include_deletion=True)``.
    """
    deleted_at = table.columns.get("deleted_at")
    deleted_by = table.columns.get("deleted_by")
    if deleted_at is None and deleted_by is None:
        return
    if deleted_at is None:
        yield Violation("deleted_by without deleted_at", "deleted_by")
        return
    if deleted_by is None:
        yield Violation("deleted_at without deleted_by", "deleted_at")
    elif problem := _kind_problem(deleted_by, _UUID, "a UUID"):
        yield Violation(problem, "deleted_by")
    if problem := _kind_problem(deleted_at, _TIMESTAMP, "a timestamp"):
        yield Violation(problem, "deleted_at")
    if not deleted_at.nullable:
        yield Violation("deleted_at is NOT NULL, so no row could be live", "deleted_at")
    if not table.leads(("deleted_at",), full_only=False):
        yield Violation("deleted_at is not indexed", "deleted_at")


@rule(
    "QX004",
    "tenant-indexed",
    rationale="Every query of a tenanted table filters on tenant_id; without an index each "
    "one scans the table.",
    hint="Declare tenant_id with index=True (standard_audit_columns does) or lead an index with it.",
    scope="entity",
)
def tenant_indexed(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A ``tenant_id`` that no index leads.

    A tenanted repository adds ``WHERE tenant_id = :tenant`` to every query; without an
    index led by it each of them scans the table, and the cost grows with every tenant.

    Fix: ``Column("tenant_id", UUIDType(), index=True)`` (as ``standard_audit_columns``
    declares it), or lead a composite index with it.
    """
    if "tenant_id" in table.columns and not table.leads(("tenant_id",), full_only=False):
        yield Violation("tenant_id is not the leading column of any index", "tenant_id")


@rule(
    "QX005",
    "aware-timestamps",
    rationale="A timestamp without a time zone is ambiguous across servers, sessions and DST.",
    hint="Use UTCDateTime() / timestamp_column(): timestamp with time zone, always UTC.",
    sources=("metadata", "postgresql"),
)
def aware_timestamps(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A ``timestamp without time zone`` column.

    A naive timestamp means whatever the writer's clock meant: servers in two zones,
    a session ``TimeZone`` setting or a DST change silently shift it. qxdb stores every
    instant as ``timestamp with time zone`` and hands out aware UTC datetimes.

    Fix: ``UTCDateTime()`` / ``timestamp_column()``; migrate with
    ``ALTER COLUMN … TYPE timestamptz USING col AT TIME ZONE 'UTC'`` (say which zone the
    old values were written in).
    """
    for column in table.columns.values():
        if column.type.kind == "timestamp" and column.type.timezone is False:
            yield Violation(f"{column.name} is {column.type.label()}", column.name)


@rule(
    "QX006",
    "jsonb",
    rationale="PostgreSQL json is text re-parsed on every read and cannot be indexed; jsonb "
    "is binary and indexable.",
    hint="Use JSONType() / jsonb_column(): jsonb on PostgreSQL, JSON elsewhere.",
    sources=("metadata", "postgresql"),
)
def jsonb(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A ``json`` column on PostgreSQL (or a model JSON without a JSONB variant).

    ``json`` keeps the text and re-parses it on every access; it cannot be indexed with
    GIN nor compared, and keeps duplicate keys. ``jsonb`` is parsed once, indexable and
    supports containment operators.

    Fix: ``JSONType()`` / ``jsonb_column()``;
    ``ALTER COLUMN … TYPE jsonb USING col::jsonb`` on a live table.
    """
    for column in table.columns.values():
        if column.type.kind == "json":
            where = (
                "JSON with no JSONB variant for PostgreSQL"
                if ctx.source == "metadata"
                else "json, not jsonb"
            )
            yield Violation(f"{column.name} is {where}", column.name)


@rule(
    "QX012",
    "no-char",
    rationale="char(n) pads with blanks and compares surprisingly; it is never faster than "
    "varchar or text.",
    hint="Use String(n) (varchar) or Text, with a CHECK constraint for a fixed length.",
    severity=Severity.WARNING,
)
def no_char(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A ``char(n)`` column.

    ``char(n)`` pads values with blanks, which then compare and concatenate in
    surprising ways, and it is never faster than ``varchar``/``text`` in PostgreSQL.

    Fix: ``String(n)`` or ``Text``, with a CHECK constraint when the length must be
    fixed.
    """
    for column in table.columns.values():
        if column.type.kind == "char":
            yield Violation(f"{column.name} is {column.type.label()}", column.name)


@rule(
    "QX013",
    "no-serial-key",
    rationale="Sequence keys leak row counts, collide across databases and cannot be made "
    "before the insert.",
    hint='Use uuid_column("id", primary_key=True): UUID v7, generated by the application.',
)
def no_serial_key(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An integer column filled by a sequence (serial, identity, SQLite's rowid).

    Sequence keys leak how many rows exist, collide when two databases' rows meet, can
    only be known after the insert (so events cannot carry the id of the row they
    describe in the same transaction), and can run out (QX018 watches that).

    Fix: ``uuid_column("id", primary_key=True)``.
    """
    for column in table.columns.values():
        if column.serial:
            yield Violation(
                f"{column.name} is an integer filled by a sequence (serial/identity/rowid)",
                column.name,
            )


# type kind -> why it is discouraged, what to use instead
_DISCOURAGED = {
    "money": "money: its scale follows lc_monetary and it cannot hold a currency",
    "timetz": "time with time zone: an offset without a date cannot handle DST",
}


@rule(
    "QX024",
    "discouraged-type",
    rationale="money depends on the server's locale and drops the currency; time with time "
    "zone keeps an offset without a date, which no DST rule can interpret.",
    hint="Use numeric(p, s) plus a currency column for money; timestamptz, or time plus a "
    "zone name, for times.",
    severity=Severity.WARNING,
    sources=("metadata", "postgresql"),
)
def discouraged_type(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """Column types that PostgreSQL's own "Don't Do This" advice warns against.

    ``money`` formats and rounds by the ``lc_monetary`` setting, so the same dump restores
    differently on another server, and it has no currency: two currencies in one column
    are indistinguishable. ``time with time zone`` (``timetz``) stores an offset such as
    +01 without a date, so it cannot know whether daylight saving applies.

    Fix: ``numeric(12, 2)`` (or an integer of minor units) with a ``currency char(3)``
    column; ``timestamp with time zone`` for instants, or a ``time`` plus an IANA zone name
    for a wall-clock time.
    """
    for column in table.columns.values():
        kind = column.type.kind
        if kind == "time" and column.type.timezone:
            kind = "timetz"
        if kind.removeprefix("other:") in _DISCOURAGED:
            yield Violation(
                f"{column.name} is {_DISCOURAGED[kind.removeprefix('other:')]}", column.name
            )
