"""The partitioned outbox (PostgreSQL): retention by dropping whole partitions.

At tens of millions of events a day a ``DELETE``-based purge leaves bloat and runs for
minutes; dropping a partition is a catalog change. The layout, opt-in:

- the table of ``include_outbox_table(metadata, partitioned=True)``: the same columns and
  indexes, ``PARTITION BY RANGE (recorded_at)`` (the creation time, set by the server), so
  its primary key is ``(id, recorded_at)``; PostgreSQL creates the partial pending indexes
  on every partition from the parent's;
- one partition per day (or hour), named ``<table>_p20261127`` (``_p2026112710``), made
  ahead of time by :meth:`OutboxPartitions.create_ahead`, and a default partition
  ``<table>_pdefault`` that catches rows when nobody made theirs (a write never fails
  for want of a partition).

The recorder, the store and the relay need no change: they never name a partition. An
``id`` lookup cannot be pruned to one partition (the id is not the partition key): it
probes the primary-key index of every partition, one index descent each, which is why the
number of partitions should stay in the tens (keep ``--older-than`` short, prefer daily).

Safe to run from cron while relays run: every DDL statement runs with a short
``lock_timeout`` (:data:`LOCK_TIMEOUT_MS`) and is retried, so a relay statement never waits
on it for longer than that; a drop detaches, re-checks and drops in one short transaction.
Identifiers and bounds go through PostgreSQL's own ``format('%I', '%L')``, never pasted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Column, MetaData, Table, func, literal_column, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from qxdb.core.failures import error_code_of, is_lock_timeout
from qxdb.durations import ago
from qxdb.engine import connect_checked
from qxdb.errors import ConfigurationError, DatabaseUnavailableError, ValidationError
from qxdb.mapping import make_metadata
from qxdb.outbox.table import include_outbox_table, outbox_table, pending_clause

__all__ = [
    "LOCK_TIMEOUT_MS",
    "OutboxPartitions",
    "PartitionCreateReport",
    "PartitionDropReport",
    "PartitionInfo",
    "PartitionInterval",
    "convert_to_partitioned",
]

PartitionInterval = Literal["day", "hour"]
LOCK_TIMEOUT_MS = 100
_LOCK_RETRIES = 50
_CHECK_VIOLATION = "23514"  # the default partition holds rows of the new range
_STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
_SUFFIX = {"day": "%Y%m%d", "hour": "%Y%m%d%H"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionInfo:
    """One partition: its range (``lower <= recorded_at < upper``; None for the default),
    the planner's row estimate and the rows that keep it: pending (failed included),
    failed, and leased to a relay right now."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool
    rows_estimate: int
    pending: int
    failed: int
    leased: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionDropReport:
    """Which partitions older than ``cutoff`` were dropped (or would be, on a dry run), and
    which were refused, with the number of pending rows that keep each."""

    cutoff: datetime
    dry_run: bool
    dropped: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionCreateReport:
    """The partitions made, and those that could not be: their range already has rows in
    the default partition (``create_ahead`` ran late), with how many (``blocked``), or is
    partly covered by partitions of another interval (``partial``). Those rows stay in the
    default partition (``purge`` removes them once published); later ranges are made as
    usual."""

    created: list[str] = field(default_factory=list)
    blocked: dict[str, int] = field(default_factory=dict)
    # Ranges partly covered by existing partitions (made with another interval): not
    # made, so rows of their uncovered part go to the default partition.
    partial: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutboxPartitions:
    """List, create and drop the partitions of a partitioned outbox table."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table | str | None = None,
        *,
        interval: PartitionInterval = "day",
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ConfigurationError("a partitioned outbox needs PostgreSQL")
        if interval not in _STEP:
            raise ValidationError(f"unknown partition interval {interval!r}: use day or hour")
        self.engine = engine
        self.table = table if isinstance(table, Table) else outbox_table(table)
        self.interval: PartitionInterval = interval
        self._found_schema: str | None = None

    @property
    def _schema(self) -> str:
        """The table's schema: as given, else the one the search path finds it in (read
        by :meth:`_check`, as unqualified SQL of the store and the relay finds it)."""
        return self.table.schema or self._found_schema or "public"

    def partition_name(self, lower: datetime) -> str:
        return f"{self.table.name}_p{lower.astimezone(UTC).strftime(_SUFFIX[self.interval])}"

    def _floor(self, at: datetime) -> datetime:
        at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return at if self.interval == "hour" else at.replace(hour=0)

    async def _check(self, conn: AsyncConnection) -> None:
        found = (
            await conn.execute(
                text(
                    "SELECT n.nspname, c.relkind::text FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass(:qualified)"
                ),
                {"qualified": conn.dialect.identifier_preparer.format_table(self.table)},
            )
        ).first()
        kind = None if found is None else found[1]
        if found is not None:
            self._found_schema = str(found[0])
        if kind is None:
            raise ConfigurationError(
                f"outbox table {self.table.fullname!r} does not exist in this database",
                details={"table": self.table.fullname},
            )
        if kind != "p":
            raise ConfigurationError(
                f"outbox table {self.table.fullname!r} is not partitioned: create it with "
                "include_outbox_table(metadata, partitioned=True) (see docs/outbox.md)",
                details={"table": self.table.fullname},
            )

    async def list_partitions(self) -> list[PartitionInfo]:
        """Every partition, oldest first (the default partition last)."""
        async with connect_checked(self.engine) as conn:
            await self._check(conn)
            return await self._list(conn)

    async def _list(self, conn: AsyncConnection) -> list[PartitionInfo]:
        parts = (
            await conn.execute(
                text(
                    "SELECT c.oid, c.relname, "
                    "(SELECT 'x' FROM pg_partitioned_table pt "
                    "  WHERE pt.partdefid = c.oid) IS NOT NULL AS is_default, "
                    "greatest(c.reltuples, 0)::bigint, "
                    # The bounds as timestamps, read from the catalog by PostgreSQL itself
                    # (MINVALUE, the legacy partition's lower bound, reads as NULL).
                    "(regexp_match(pg_get_expr(c.relpartbound, c.oid), "
                    "  'FROM \\(''([^'']+)''\\)'))[1]::timestamptz, "
                    "(regexp_match(pg_get_expr(c.relpartbound, c.oid), "
                    "  'TO \\(''([^'']+)''\\)'))[1]::timestamptz "
                    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent "
                    "JOIN pg_namespace n ON n.oid = p.relnamespace "
                    "WHERE n.nspname = :schema AND p.relname = :name"
                ),
                {"schema": self._schema, "name": self.table.name},
            )
        ).all()
        t = self.table
        c = t.c
        tableoid: Any = literal_column("tableoid")
        counts_query = (
            select(
                tableoid,
                func.count(),
                func.count(c.last_error),
                func.count().filter(c.locked_until > func.now()),
            )
            .select_from(t)
            .where(pending_clause(t))
            .group_by(tableoid)
        )
        counts = {
            int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in await conn.execute(counts_query)
        }
        out = [
            PartitionInfo(
                name=r[1],
                lower=r[4],
                upper=r[5],
                is_default=bool(r[2]),
                rows_estimate=int(r[3]),
                pending=counts.get(int(r[0]), (0, 0, 0))[0],
                failed=counts.get(int(r[0]), (0, 0, 0))[1],
                leased=counts.get(int(r[0]), (0, 0, 0))[2],
            )
            for r in parts
        ]
        # Oldest first: a partition from MINVALUE (the legacy one of a conversion) leads.
        first = datetime.min.replace(tzinfo=UTC)
        return sorted(out, key=lambda p: (p.is_default, p.lower or first, p.name))

    async def create_ahead(
        self, days: int, *, now: datetime | None = None
    ) -> PartitionCreateReport:
        """Make the missing partitions from the current day (hour) for ``days`` days, and the
        default partition if there is none (the names created, oldest first). A range
        whose rows already went to the default partition cannot become a partition
        (PostgreSQL would have to move them under a lock every writer waits on): it is
        left out and reported in ``blocked``, and the rest is made."""
        if not 1 <= days <= 366:
            raise ValidationError(f"days must be between 1 and 366, got {days}")
        start = self._floor(now or datetime.now(UTC))
        step = _STEP[self.interval]
        wanted = []
        at = start
        while at < start + timedelta(days=days):
            wanted.append(at)
            at += step
        report = PartitionCreateReport()
        created = report.created
        async with connect_checked(self.engine) as conn:
            await self._check(conn)
            existing = await self._list(conn)
            await conn.commit()
            floor = datetime.min.replace(tzinfo=UTC)
            covered = [(p.lower or floor, p.upper) for p in existing if p.upper is not None]
            default = next((p.name for p in existing if p.is_default), None)
            if default is None:
                name = default = f"{self.table.name}_pdefault"
                await self._ddl(
                    conn,
                    "CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT",
                    self._schema,
                    name,
                    self._schema,
                    self.table.name,
                )
                created.append(name)
            for lower in wanted:
                upper = lower + step
                name = self.partition_name(lower)
                overlapping = sorted((lo, up) for lo, up in covered if lo < upper and lower < up)
                if overlapping:
                    if not _covers(overlapping, lower, upper):
                        # Partitions of another interval hold part of it (hourly ones
                        # under a day): the rest would silently go to the default one.
                        report.partial.append(name)
                    continue
                try:
                    await self._ddl(
                        conn,
                        "CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)",
                        self._schema,
                        name,
                        self._schema,
                        self.table.name,
                        lower,
                        upper,
                    )
                except Exception as exc:
                    if error_code_of(exc) != _CHECK_VIOLATION:
                        raise
                    # Rows of this range are in the default partition.
                    report.blocked[name] = await self._rows_in(conn, default, lower, upper)
                    continue
                created.append(name)
        return report

    async def _rows_in(
        self, conn: AsyncConnection, partition: str, lower: datetime, upper: datetime
    ) -> int:
        query = await self._format(
            conn,
            "SELECT count(*) FROM %I.%I WHERE recorded_at >= %L AND recorded_at < %L",
            self._schema,
            partition,
            lower,
            upper,
        )
        count = int((await conn.execute(text(query))).scalar_one())
        await conn.commit()
        return count

    async def _format(self, conn: AsyncConnection, template: str, *args: Any) -> str:
        """``template`` filled by PostgreSQL's ``format()``: ``%I`` quotes an identifier,
        ``%L`` a literal (timestamps as timestamptz), so nothing is pasted by us."""
        query, params = _format_query(template, args)
        return str((await conn.execute(query, params)).scalar_one())

    async def _ddl(self, conn: AsyncConnection, template: str, *args: Any) -> None:
        """Build one statement with :meth:`_format` and run it under the short lock
        timeout, retried while a lock is not granted in time."""
        statement = await self._format(conn, template, *args)
        await conn.commit()
        await self._retrying(conn, lambda: conn.execute(text(statement)))

    async def _retrying(self, conn: AsyncConnection, work: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(_LOCK_RETRIES):
            try:
                async with conn.begin():
                    await conn.execute(text(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}"))
                    return await work()
            except Exception as exc:
                if not is_lock_timeout(exc):
                    raise
            await asyncio.sleep(min(1.0, 0.05 * (attempt + 1)))
        raise DatabaseUnavailableError(
            f"could not lock {self.table.name} for a partition change: {_LOCK_RETRIES} tries "
            f"of {LOCK_TIMEOUT_MS} ms each timed out (a long transaction holds the table); "
            "that statement did not run (what was done before it stays): run it again later"
        )

    async def drop_older_than(
        self, older_than: timedelta, *, dry_run: bool = False, now: datetime | None = None
    ) -> PartitionDropReport:
        """Drop every partition whose whole range is older than ``older_than``, unless it
        holds a pending (failed, leased) row: those are refused with their count.

        Each drop is one short transaction: detach (under the lock timeout), count the
        pending rows of the detached partition again (a replay may have just made one
        pending), drop it, or roll back and refuse.
        """
        if older_than <= timedelta(0):
            raise ValidationError("the age of partitions to drop must be positive")
        cutoff = ago(older_than, now=now, what="age of partitions to drop")
        report = PartitionDropReport(cutoff=cutoff, dry_run=dry_run)
        async with connect_checked(self.engine) as conn:
            await self._check(conn)
            parts = await self._list(conn)
            await conn.commit()
            for part in parts:
                if part.is_default or part.upper is None or part.upper > cutoff:
                    continue
                if part.pending:
                    report.refused[part.name] = part.pending
                    continue
                if dry_run:
                    report.dropped.append(part.name)
                    continue
                kept = await self._detach_and_drop(conn, part.name)
                if kept:
                    report.refused[part.name] = kept
                else:
                    report.dropped.append(part.name)
        return report

    async def _detach_and_drop(self, conn: AsyncConnection, name: str) -> int:
        schema = self._schema
        detach = await self._format(
            conn, "ALTER TABLE %I.%I DETACH PARTITION %I.%I", schema, self.table.name, schema, name
        )
        # The detached partition as a table of its own, for the one definition of pending.
        alone = Table(
            name, MetaData(), Column("published_at"), Column("dead_at"), schema=self.table.schema
        )
        count = select(func.count()).select_from(alone).where(pending_clause(alone))
        drop = await self._format(conn, "DROP TABLE %I.%I", schema, name)
        await conn.commit()

        class _Kept(Exception):
            def __init__(self, n: int) -> None:
                self.n = n

        async def work() -> None:
            await conn.execute(text(detach))
            pending = int((await conn.execute(count)).scalar_one())
            if pending:
                raise _Kept(pending)  # rolls the detach back
            await conn.execute(text(drop))

        try:
            await self._retrying(conn, work)
        except _Kept as kept:
            return kept.n
        return 0


def _format_query(template: str, args: Sequence[Any]) -> tuple[TextClause, dict[str, Any]]:
    """``SELECT format(template, args…)``: PostgreSQL quotes each argument (``%I`` an
    identifier, ``%L`` a literal; datetimes bound as timestamptz), nothing is pasted by us.
    One builder for the async methods and the migration helper."""
    casts = ", ".join(
        f"CAST(:a{i} AS {'timestamptz' if isinstance(a, datetime) else 'text'})"
        for i, a in enumerate(args)
    )
    params = {"t": template, **{f"a{i}": a for i, a in enumerate(args)}}
    return text(f"SELECT format(CAST(:t AS text), {casts})"), params


def _covers(ranges: list[tuple[datetime, datetime]], lower: datetime, upper: datetime) -> bool:
    """Do the sorted ``ranges`` cover ``[lower, upper)`` without a gap?"""
    reached = lower
    for lo, up in ranges:
        if lo > reached:
            return False
        reached = max(reached, up)
    return reached >= upper


def convert_to_partitioned(
    bind: Connection, name: str | None = None, *, now: datetime | None = None
) -> str:
    """Turn a plain outbox table into the partitioned layout, inside a migration
    (``convert_to_partitioned(op.get_bind())``); returns the legacy partition's name.

    No row is copied: the plain table is renamed ``<table>_legacy`` (its indexes get a
    ``_lgcy`` suffix and its ``(id)`` primary key goes), a partitioned table takes its name,
    and the old table becomes its first partition, for everything recorded before the
    next midnight UTC (``FROM (MINVALUE) TO (…)``), plus a default partition. PostgreSQL
    builds the ``(id, recorded_at)`` key on the old rows and checks their range while the
    migration holds the table: minutes on tens of millions of rows, during which writers
    wait. Afterwards run ``qxdb outbox partitions create-ahead``; the legacy partition is
    dropped like any other once nothing in it is pending.
    """
    table = outbox_table(name)
    legacy = f"{table.name}_legacy"
    schema = table.schema or str(bind.execute(text("SELECT current_schema()")).scalar_one())
    day = (now or datetime.now(UTC)).astimezone(UTC)
    cutover = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)

    def run(template: str, *args: Any) -> None:
        statement = bind.execute(*_format_query(template, args))
        bind.execute(text(statement.scalar_one()))

    have = set(
        bind.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :schema AND table_name = :name"
            ),
            {"schema": schema, "name": table.name},
        ).scalars()
    )
    missing = sorted(set(table.c.keys()) - have)
    if missing:
        # A partition must have every column of its parent: say which, before any change.
        raise ConfigurationError(
            f"outbox table {table.fullname!r} lacks columns {', '.join(missing)}: bring it "
            "up to date first (an earlier revision; see docs/outbox.md), then convert it",
            details={"table": table.fullname, "missing_columns": missing},
        )
    run("ALTER TABLE %I.%I RENAME TO %I", schema, table.name, legacy)
    indexes = bind.execute(
        text(
            "SELECT i.relname, x.indisprimary, con.conname FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.contype = 'p' "
            "WHERE n.nspname = :schema AND t.relname = :legacy"
        ),
        {"schema": schema, "legacy": legacy},
    ).all()
    for index, primary, constraint in indexes:
        if primary:
            # A partition cannot keep a primary key of its own: the parent's
            # (id, recorded_at) is built on it when it is attached.
            run("ALTER TABLE %I.%I DROP CONSTRAINT %I", schema, legacy, constraint)
        else:
            run("ALTER INDEX %I.%I RENAME TO %I", schema, index, f"{index[:58]}_lgcy")
    # make_metadata: the key gets the convention's name (pk_<table>), as in the models.
    include_outbox_table(make_metadata(), table.fullname, partitioned=True).create(bind)
    run(
        "ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (MINVALUE) TO (%L)",
        schema,
        table.name,
        schema,
        legacy,
        cutover,
    )
    run(
        "CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT",
        schema,
        f"{table.name}_pdefault",
        schema,
        table.name,
    )
    return legacy
