"""Health rules: the state of a living PostgreSQL database, read from its catalogs.

A model cannot break these; a database gets there through a failed migration step, an
emergency fix or plain growth. They run only on a live PostgreSQL (``ctx.catalog``).
"""

from __future__ import annotations

from collections.abc import Iterator

from qxdb.conventions.catalog import Catalog, IndexFacts
from qxdb.conventions.findings import Severity
from qxdb.conventions.rules.base import CheckContext, Source, Violation, rule
from qxdb.conventions.snapshot import TableSnapshot

# A sequence past this fraction of its usable range is reported: at a million ids a day
# the remaining 20 % of an integer still lasts about a year, time enough to migrate.
SEQUENCE_THRESHOLD = 0.8

_LIVE: tuple[Source, ...] = ("postgresql",)


def _catalog(ctx: CheckContext) -> Catalog:
    if ctx.catalog is None:  # pragma: no cover - the sources keep these rules off elsewhere
        raise RuntimeError("health rules need a live PostgreSQL catalog")
    return ctx.catalog


def _columns(ix: IndexFacts) -> str:
    return ", ".join(c if c is not None else "<expression>" for c in ix.columns)


@rule(
    "QX016",
    "invalid-index",
    rationale="A failed CREATE INDEX CONCURRENTLY leaves an invalid index: no query uses it, "
    "yet every write still maintains it (and a unique one still rejects rows).",
    hint="REINDEX INDEX CONCURRENTLY <index>; or DROP INDEX CONCURRENTLY it and build it again.",
    sources=_LIVE,
)
def invalid_index(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An index whose build did not finish.

    ``CREATE INDEX CONCURRENTLY`` (and ``REINDEX CONCURRENTLY``) builds in several
    transactions. When one fails -- a deadlock, a unique violation, a cancelled migration,
    a statement timeout -- PostgreSQL keeps the half-built index, marked invalid
    (``pg_index.indisvalid = false``). The planner ignores it, so the queries it was meant
    to speed up still scan, but every INSERT and UPDATE keeps paying to maintain it; an
    invalid *unique* index even goes on rejecting duplicates. A migration tool that saw no
    error from a later step will not notice.

    Fix: rebuild it without blocking writes, ``REINDEX INDEX CONCURRENTLY ix_name;``, or
    ``DROP INDEX CONCURRENTLY ix_name;`` and run the ``CREATE INDEX CONCURRENTLY`` again
    (after removing the duplicates, if a unique build failed on them). An index being built
    right now is also invalid until it finishes: check again after the migration.
    """
    for ix in _catalog(ctx).table(table.name).indexes:
        if not ix.valid:
            yield Violation(
                f"index {ix.name} ({_columns(ix)}) is invalid: its build failed", ix.name
            )


_CONSTRAINT_KIND = {"c": "check constraint", "f": "foreign key"}


@rule(
    "QX017",
    "constraint-not-validated",
    rationale="A constraint added NOT VALID checks only new rows: existing rows may break it, "
    "and the planner cannot rely on it.",
    hint="ALTER TABLE <table> VALIDATE CONSTRAINT <name>; (a light lock, safe on a live table).",
    sources=_LIVE,
)
def constraint_not_validated(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A CHECK or FOREIGN KEY constraint added ``NOT VALID`` and never validated.

    ``ADD CONSTRAINT … NOT VALID`` is the right first step on a big table: it is quick and
    enforces the rule for new and updated rows. The second step,
    ``ALTER TABLE … VALIDATE CONSTRAINT``, scans the old rows under a lock that lets reads
    and writes go on. When that second step is forgotten, rows that break the constraint
    can remain, ``pg_dump`` restores fail on them, and the planner cannot use a CHECK for
    constraint exclusion.

    Fix: ``ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_customer_id_customers;``. If it
    fails, the error names a violating row: repair the data and validate again.
    """
    for constraint in _catalog(ctx).table(table.name).unvalidated:
        kind = _CONSTRAINT_KIND.get(constraint.kind, "constraint")
        yield Violation(
            f"{kind} {constraint.name} was added NOT VALID and never validated", constraint.name
        )


@rule(
    "QX018",
    "sequence-exhaustion",
    rationale="When a sequence reaches the end of its type (or of its column's type) every "
    "insert fails: an outage announced months ahead.",
    hint="ALTER TABLE <table> ALTER COLUMN <column> TYPE bigint (and ALTER SEQUENCE … AS bigint).",
    sources=_LIVE,
)
def sequence_exhaustion(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A serial, identity or ``DEFAULT nextval(...)`` column past 80 % of its range.

    The usable range ends at the smaller of the sequence's maximum and the column type's
    (a ``bigint`` sequence feeding an ``integer`` column still stops at 2,147,483,647).
    Past the end, ``nextval`` or the insert fails and the table takes no new rows. The
    rule reads the sequence's last value (``pg_sequence_last_value``); a sequence never
    used, or one the checking role may not read, is not judged.

    Fix, before the end: widen the column and the sequence, e.g.
    ``ALTER TABLE orders ALTER COLUMN id TYPE bigint; ALTER SEQUENCE orders_id_seq AS bigint;``
    (the column change rewrites the table: on a big table add a new bigint column, backfill
    it in batches and swap). Referencing foreign key columns need the same widening.
    """
    for seq in _catalog(ctx).table(table.name).sequences:
        used = seq.used
        if used is None or used < SEQUENCE_THRESHOLD:
            continue
        yield Violation(
            f"{seq.column} ({seq.column_type}) has used {used:.0%} of its range: sequence "
            f"{seq.name} is at {seq.last_value:,} of {seq.limit:,}",
            seq.column,
        )


def _null_guarded(ix: IndexFacts, column: str) -> bool:
    """Does a partial index exclude the column's NULLs (``WHERE column IS NOT NULL``)?"""
    predicate = (ix.predicate or "").lower().replace('"', "")
    return f"{column.lower()} is not null" in predicate


@rule(
    "QX020",
    "unique-nullable",
    rationale="NULLs are distinct in a unique index: a key over a nullable column lets "
    "duplicates in through every row where that column is NULL.",
    hint="Make the column NOT NULL, use UNIQUE NULLS NOT DISTINCT (PostgreSQL 15), or add a "
    "partial unique index for the NULL case.",
    severity=Severity.WARNING,
    sources=_LIVE,
)
def unique_nullable(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A unique index of several columns, one of them nullable.

    PostgreSQL treats every NULL as different from every other, so ``UNIQUE (tenant_id,
    code)`` accepts ``(NULL, 'A')`` any number of times: the "global" rows the NULL stands
    for are not unique at all. A single-column unique key over a nullable column is the
    usual "optional, but unique when given" and is not reported, nor is an index that is
    ``NULLS NOT DISTINCT`` or whose predicate excludes the NULLs
    (``WHERE tenant_id IS NOT NULL``).

    Fix: declare the column NOT NULL; or, on PostgreSQL 15 and later,
    ``CREATE UNIQUE INDEX … NULLS NOT DISTINCT``; or pair the index with a partial one,
    ``CREATE UNIQUE INDEX … (code) WHERE tenant_id IS NULL``.
    """
    for ix in _catalog(ctx).table(table.name).indexes:
        if not ix.unique or ix.nulls_not_distinct or len(ix.columns) < 2:
            continue
        nullable = [
            c
            for c, is_null in zip(ix.columns, ix.nullable, strict=True)
            if c is not None and is_null and not _null_guarded(ix, c)
        ]
        if nullable:
            yield Violation(
                f"unique index {ix.name} ({_columns(ix)}) allows duplicates where "
                f"{' or '.join(nullable)} is NULL",
                ix.name,
            )


def _stats_since(catalog: Catalog) -> str:
    if catalog.stats_reset is None:
        return "since statistics began (never reset)"
    return f"since statistics were reset at {catalog.stats_reset.isoformat(timespec='seconds')}"


@rule(
    "QX021",
    "unused-index",
    rationale="An index no query reads still costs every write, vacuum and backup; "
    "PostgreSQL counts its scans since the statistics were last reset.",
    hint="Confirm on every replica and over a full business cycle, then DROP INDEX CONCURRENTLY.",
    severity=Severity.INFO,
    sources=_LIVE,
)
def unused_index(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """An index with no scan since the statistics were reset (``pg_stat_user_indexes``).

    Reported as *info* with the reset time, because the counter only knows this server
    since then: a fresh reset, a replica serving the reads, or a monthly report can all
    make a needed index look idle. Only tables with rows are judged (in a freshly migrated
    database every index is merely untested). Not reported: unique and
    primary key indexes and those
    behind constraints (they enforce a rule, not only speed reads), invalid indexes
    (QX016), and an index that is the only one leading with a foreign key's columns
    (parent deletes need it, and they may simply not have happened yet).

    Fix: check the same counter on every replica and after a full cycle of the business
    (month end, yearly jobs), then ``DROP INDEX CONCURRENTLY ix_name;``.
    """
    catalog = _catalog(ctx)
    facts = catalog.table(table.name)
    if not facts.live_rows:
        return  # an empty table (a fresh database): its indexes are untested, not unused
    fk_columns = [set(fk.columns) for fk in table.foreign_keys]
    for ix in facts.indexes:
        if ix.unique or ix.constraint or not ix.valid or ix.scans is None or ix.scans > 0:
            continue
        if any(set(ix.columns[: len(cols)]) == cols for cols in fk_columns):
            continue
        yield Violation(
            f"index {ix.name} ({_columns(ix)}) has had no scan {_stats_since(catalog)}", ix.name
        )


@rule(
    "QX022",
    "disabled-trigger",
    rationale="A disabled trigger does nothing, silently; the triggers behind a foreign key "
    "are the key itself, so disabling them turns the key off.",
    hint="ALTER TABLE <table> ENABLE TRIGGER ALL; after checking for rows the key would reject.",
    sources=_LIVE,
)
def disabled_trigger(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A trigger left disabled, most often by ``ALTER TABLE … DISABLE TRIGGER ALL``.

    Bulk loads and data repairs disable triggers for speed and sometimes never enable them
    again. PostgreSQL enforces foreign keys with internal triggers, so
    ``DISABLE TRIGGER ALL`` also stops enforcing every foreign key of the table: orphans
    get in and nothing in the declared schema shows it. User triggers (audit, denormalized
    counters) stop the same way. Triggers set to fire only on replicas or always
    (``ENABLE REPLICA`` / ``ENABLE ALWAYS``) are deliberate and not reported.

    Fix: look for rows the key would reject (an anti-join to the parent), repair them, then
    ``ALTER TABLE orders ENABLE TRIGGER ALL;`` (or ``ENABLE TRIGGER name``).
    """
    keys: set[str] = set()
    for trigger in _catalog(ctx).table(table.name).disabled_triggers:
        if trigger.foreign_key is not None:
            if trigger.foreign_key not in keys:
                keys.add(trigger.foreign_key)
                yield Violation(
                    f"foreign key {trigger.foreign_key} is not enforced: its triggers are disabled",
                    trigger.foreign_key,
                )
            continue
        yield Violation(f"trigger {trigger.name} is disabled", trigger.name)


@rule(
    "QX023",
    "unlogged-table",
    rationale="An UNLOGGED table is emptied after a crash and is missing on streaming "
    "replicas: fine for a cache, data loss for anything else.",
    hint="ALTER TABLE <table> SET LOGGED; (rewrites the table), or name it as a cache and "
    "ignore the rule for it.",
    severity=Severity.WARNING,
    sources=_LIVE,
)
def unlogged_table(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A table created ``UNLOGGED`` (or switched with ``SET UNLOGGED``).

    Unlogged tables skip the write-ahead log, which makes them fast to load, and
    PostgreSQL pays for that by truncating them after a crash or an immediate shutdown;
    they are not replicated either, so a failover finds them empty. A bulk import that
    created its target UNLOGGED and never switched it back leaves business data there.

    Fix: ``ALTER TABLE imports SET LOGGED;`` (it rewrites the table and writes it all to the
    WAL: plan it like a migration). For a real cache, ignore the rule for the table with
    the reason.
    """
    if _catalog(ctx).table(table.name).unlogged:
        yield Violation(f"{table.name} is UNLOGGED: truncated after a crash, not replicated")
