"""``OutboxStore``: the queries behind ``qxdb outbox inspect | show | stats | replay | purge``.

Reads page by id (keyset, never OFFSET). Bulk changes run as many short transactions of
at most ``batch_size`` rows each, so no statement holds row locks for long and a relay
keeps working meanwhile; each batch re-checks its condition, so a row that changed
since it was selected (a replayed row is no longer "published before the cutoff") is
left alone.

On PostgreSQL the hot queries use the table's indexes: pending rows through the partial
``…_pending`` index, purge ranges through ``…_published_at`` and ``…_dead_at``, and each
batch of a replay or purge is one statement (:mod:`qxdb.outbox.batches`). On SQLite the
same operations run with ``IN`` lists and ``executemany``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    cast,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qxdb.core.defaults import BULK_BATCH_SIZE, OUTBOX_LIST_LIMIT, OUTBOX_LIST_LIMIT_MAX
from qxdb.durations import ago
from qxdb.engine import connect_checked, create_engine
from qxdb.errors import ConfigurationError, NotFoundError, ValidationError
from qxdb.outbox.batches import BatchSizer, delete_batch, replay_batch, rows_after, walk_column
from qxdb.outbox.fingerprint import (
    FailureGrouping,
    describe_error,
    error_class,
    validate_grouping,
)
from qxdb.outbox.reports import (
    BulkChangeReport,
    EventCounts,
    FailureGroup,
    FailureGroups,
    OutboxPage,
    OutboxRow,
    OutboxStats,
    PurgePlan,
    ReplayPlan,
)
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.table import outbox_table
from qxdb.outbox.triage import group_of, register_sqlite_functions
from qxdb.result import Result
from qxdb.settings import DatabaseSettings
from qxdb.types import UTCDateTime

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "PLAN_SAMPLE_MAX",
    "OutboxStore",
    "Progress",
    "open_outbox_store",
]

DEFAULT_BATCH_SIZE = BULK_BATCH_SIZE
# Below this many rows (planner estimate) counting published rows exactly is cheap.
EXACT_COUNT_BELOW = 200_000
# The most rows a replay plan shows: a preview, not a read of the selection.
PLAN_SAMPLE_MAX = 1000
Progress = Callable[[int, int], None]
"""Called after each batch with (rows done, rows expected)."""

_DELIVERY_STATE = ("delivery_id", "dead_at", "next_attempt_at", "locked_until", "locked_by")
_TRIAGE = ("replay_count", "first_failed_at", "error_group")


class OutboxStore:
    """Inspect and operate one outbox table through an engine the caller owns."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table | str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        require_triage: bool = True,
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                f"OutboxStore takes an AsyncEngine (create_engine), got {type(engine).__name__}"
            )
        if not _whole(batch_size) or batch_size < 1:
            raise ValidationError(f"batch size must be a whole number >= 1, got {batch_size!r}")
        self.engine = engine
        # None: the configured table (QX_DB__OUTBOX_TABLE), as every outbox entry point.
        self.table = table if isinstance(table, Table) else outbox_table(table)
        self.batch_size = batch_size
        # False: a table not yet migrated for dead-letter triage passes the check (the
        # relay's pre-flight count needs none of those columns).
        self.require_triage = require_triage
        self._checked = False

    @property
    def table_name(self) -> str:
        return self.table.fullname

    @property
    def _is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def _connect(self, *, autocommit: bool = False) -> AsyncIterator[AsyncConnection]:
        async with connect_checked(self.engine) as conn:
            if not self._checked:
                await self._check_table(conn)
                self._checked = True
            if conn.dialect.name == "sqlite":
                # The failure fingerprint's SQL functions, on whichever pooled
                # connection this is (registering again replaces them).
                raw = await conn.get_raw_connection()
                await register_sqlite_functions(raw.driver_connection)
            if autocommit:
                # A read of one statement is one snapshot anyway: without BEGIN and
                # ROLLBACK it costs one round trip instead of three (most of a 50-row page).
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def _check_table(self, conn: AsyncConnection) -> None:
        """A missing table or one still in the reference's shape is a clear configuration error."""
        name, schema = self.table.name, self.table.schema

        def columns(sync_conn: Any) -> set[str] | None:
            inspector = inspect(sync_conn)
            if not inspector.has_table(name, schema=schema):
                return None
            return {c["name"] for c in inspector.get_columns(name, schema=schema)}

        found = await conn.run_sync(columns)
        await conn.rollback()
        if found is None:
            raise ConfigurationError(
                f"outbox table {self.table_name!r} does not exist in this database: create it "
                "with your migrations (include_outbox_table) or set QX_DB__OUTBOX_TABLE",
                details={"table": self.table_name},
            )
        missing = sorted(set(self.table.c.keys()) - found)
        if not self.require_triage:
            missing = [m for m in missing if m not in _TRIAGE]
        if missing:
            hint = (
                "bring it up to date with an Alembic revision (see docs/outbox.md)"
                if set(missing)
                <= {*_DELIVERY_STATE, *_TRIAGE, "recorded_at", "ordering_key", "headers"}
                else "is QX_DB__OUTBOX_TABLE naming the right table?"
            )
            raise ConfigurationError(
                f"outbox table {self.table_name!r} lacks columns {', '.join(missing)}: {hint}",
                details={"table": self.table_name, "missing_columns": missing},
            )

    # -- reading -----------------------------------------------------------------------

    async def list_rows(
        self,
        selection: OutboxSelection,
        *,
        limit: int = OUTBOX_LIST_LIMIT,
        after: UUID | None = None,
    ) -> OutboxPage:
        """Up to ``limit`` rows, oldest first, after the row ``after`` (keyset paging).

        Oldest by id (UUID v7: recording order); with a window (``since``/``until``) by
        ``occurred_at`` then id, so the window's index serves the page instead of a walk
        of the primary key from the very first row.
        """
        if not _whole(limit) or not 1 <= limit <= OUTBOX_LIST_LIMIT_MAX:
            raise ValidationError(
                f"limit must be between 1 and {OUTBOX_LIST_LIMIT_MAX}, got {limit!r}"
            )
        if after is not None and not isinstance(after, UUID):
            raise ValidationError(f"after must be a row id (UUID), got {type(after).__name__}")
        t = self.table
        windowed = selection.since is not None or selection.until is not None
        key = t.c.occurred_at if windowed else t.c.id
        query = select(t).where(selection.where(t)).order_by(key, t.c.id).limit(limit + 1)
        async with self._connect(autocommit=True) as conn:
            if after is not None:
                start = (await conn.execute(select(key).where(t.c.id == after))).scalar()
                if start is None:
                    raise ValidationError(
                        f"the row to continue after ({after}) is not in {self.table_name} "
                        "any more: start again without it"
                    )
                query = query.where(rows_after(key, t.c.id, start, after))
            rows = [_to_row(r) for r in (await conn.execute(query)).all()]
        more = len(rows) > limit
        rows = rows[:limit]
        return OutboxPage(rows=rows, next_after=rows[-1].id if more else None)

    async def get(self, row_id: UUID) -> Result[OutboxRow]:
        """One row by id; a failure with :class:`NotFoundError` when there is none."""
        if not isinstance(row_id, UUID):
            raise ValidationError(f"a row id is a UUID, got {type(row_id).__name__}")
        t = self.table
        async with self._connect() as conn:
            found = (await conn.execute(select(t).where(t.c.id == row_id))).first()
        if found is None:
            return Result.failure(
                NotFoundError(
                    f"no outbox row with id {row_id} in {self.table_name}",
                    details={"id": str(row_id)},
                )
            )
        return Result.success(_to_row(found))

    async def count(self, selection: OutboxSelection) -> int:
        t = self.table
        async with self._connect() as conn:
            return await self._count(conn, selection.where(t))

    async def _count(self, conn: AsyncConnection, where: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(self.table).where(where)
        return int((await conn.execute(query)).scalar_one())

    async def stats(self, *, exact: bool = False) -> OutboxStats:
        """Counts by status and event name, and the lag.

        The pending part (counts, failed, oldest pending) always reads only pending rows,
        through the partial index. Published rows are the bulk of a healthy table: on
        PostgreSQL, unless ``exact``, their number is the planner's estimate when the table
        holds more than :data:`EXACT_COUNT_BELOW` rows, and they are not split by event
        name; ``exact=True`` counts everything (one pass over the table).
        """
        t = self.table
        c = t.c
        pending = OutboxSelection(status="pending").where(t)
        dead = OutboxSelection(status="dead").where(t)
        # One pass over the pending and dead rows (both partial indexes, OR-ed), split by
        # event name; the totals are sums of the groups. One statement rather than
        # three: on a partitioned outbox each statement opens every partition, which
        # made stats cost twice the plain table's. Each statement of a READ COMMITTED
        # transaction takes its own snapshot anyway, so autocommit loses nothing.
        undelivered = (
            select(
                c.event_name,
                func.count().filter(pending),
                func.count(c.last_error).filter(pending),
                func.count().filter(dead),
                func.min(c.recorded_at).filter(pending),
                func.now(type_=UTCDateTime()),
            )
            .where(or_(pending, dead))
            .group_by(c.event_name)
        )
        per_event: dict[str, dict[str, int]] = {}
        oldest: datetime | None = None
        now: datetime | None = None
        async with self._connect(autocommit=True) as conn:
            for name, n_pend, n_fail, n_dead_rows, first, clock in await conn.execute(undelivered):
                now = clock
                counts = per_event.setdefault(name, {})
                if n_pend:
                    counts.update(pending=int(n_pend), failed=int(n_fail))
                if n_dead_rows:
                    counts["dead"] = int(n_dead_rows)
                if first is not None and (oldest is None or first < oldest):
                    oldest = first
            n_pending = sum(v.get("pending", 0) for v in per_event.values())
            n_failed = sum(v.get("failed", 0) for v in per_event.values())
            n_dead = sum(v.get("dead", 0) for v in per_event.values())

            estimate = None if exact else await self._estimated_rows(conn)
            if estimate is not None and estimate >= EXACT_COUNT_BELOW:
                total = max(estimate, n_pending + n_dead)
                n_published = total - n_pending - n_dead
                published_is_estimate = True
            elif exact:
                published_by_event = (
                    select(c.event_name, func.count())
                    .where(c.published_at.is_not(None))
                    .group_by(c.event_name)
                )
                for name, count in await conn.execute(published_by_event):
                    per_event.setdefault(name, {})["published"] = int(count)
                n_published = sum(v.get("published", 0) for v in per_event.values())
                published_is_estimate = False
            else:
                n_published = await self._count(conn, c.published_at.is_not(None))
                published_is_estimate = False
        if now is None:
            now = datetime.now(UTC)
        lag = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        return OutboxStats(
            table=self.table_name,
            measured_at=now,
            total=n_pending + n_dead + n_published,
            pending=n_pending,
            failed=n_failed,
            published=n_published,
            dead=n_dead,
            oldest_pending_recorded_at=oldest,
            lag_seconds=round(lag, 3),
            published_is_estimate=published_is_estimate,
            exact=exact,
            by_event=[
                EventCounts(
                    event_name=name,
                    pending=v.get("pending", 0),
                    failed=v.get("failed", 0),
                    dead=v.get("dead", 0),
                    published=v.get("published", 0) if exact else None,
                )
                for name, v in sorted(per_event.items())
            ],
        )

    async def _estimated_rows(self, conn: AsyncConnection) -> int | None:
        """The planner's row count of the table (PostgreSQL), None where there is none."""
        if not self._is_postgres:
            return None
        qualified = conn.dialect.identifier_preparer.format_table(self.table)
        # A partitioned table's own reltuples stays -1 (autovacuum never analyses the
        # parent): its estimate is the sum over its partitions.
        query = text(
            "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT sum(greatest(p.reltuples, 0)) "
            "FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid "
            "WHERE i.inhparent = c.oid) ELSE c.reltuples END::bigint "
            "FROM pg_class c WHERE c.oid = to_regclass(:name)"
        )
        value = (await conn.execute(query, {"name": qualified})).scalar()
        # -1: never vacuumed or analysed; then the number is unknown, so count.
        return None if value is None or int(value) < 0 else int(value)

    # -- failure triage ----------------------------------------------------------------

    async def failure_groups(
        self,
        selection: OutboxSelection | None = None,
        *,
        by: FailureGrouping = "error",
        limit: int = OUTBOX_LIST_LIMIT,
    ) -> FailureGroups:
        """Failed or dead rows grouped by the fingerprint of their error, largest first.

        ``selection`` (default: every dead row) must be of status ``dead`` or ``failed``;
        its other criteria narrow it. ``by="event"`` / ``"tenant"`` splits each group by
        event name / tenant. The grouping runs in the database (PostgreSQL: the stored
        ``error_group``; SQLite: the Python rules as a registered function), one pass,
        no rows sent back but one sample per group. Replay a group with
        ``OutboxSelection(status=…, error_group=fingerprint)`` (plus ``event``/``tenant_id``
        for a split group).
        """
        selection = selection or OutboxSelection(status="dead")
        if selection.status not in ("dead", "failed"):
            raise ValidationError(
                f"failure groups are of dead or failed rows, not {selection.status!r}"
            )
        if not 1 <= limit <= OUTBOX_LIST_LIMIT_MAX:
            raise ValidationError(
                f"limit must be between 1 and {OUTBOX_LIST_LIMIT_MAX}, got {limit}"
            )
        by = validate_grouping(by)
        t = self.table
        c = t.c
        split = {"error": None, "event": c.event_name, "tenant": c.tenant_id}[by]
        inner_cols: list[Any] = [
            group_of(t).label("fp"),
            cast(c.id, Text).label("rid"),
            func.coalesce(c.first_failed_at, c.dead_at).label("first"),
            c.dead_at.label("dead"),
        ]
        if split is not None:
            inner_cols.append(split.label("split"))
        # A subquery, so GROUP BY names the fingerprint once (on SQLite a function call).
        rows = select(*inner_cols).where(selection.where(t)).subquery("failed_rows")
        keys: list[Any] = [rows.c.fp] + ([rows.c.split] if split is not None else [])
        count = func.count()
        query = (
            select(
                *keys,
                count.label("n"),
                func.min(rows.c.first).label("first"),
                func.max(rows.c.dead).label("last"),
                func.max(rows.c.rid).label("rid"),
                func.count().over().label("groups"),
                func.sum(count).over().label("rows"),
            )
            .group_by(*keys)
            .order_by(count.desc(), *keys)
            .limit(limit)
        )
        async with self._connect() as conn:
            found = (await conn.execute(query)).all()
            sample_ids = [UUID(str(r.rid)) for r in found]
            samples = {
                r.id: r
                for r in (
                    _to_row(x) for x in await conn.execute(select(t).where(c.id.in_(sample_ids)))
                )
            }
        groups = []
        for r in found:
            value = r[1] if split is not None else None
            sample = samples.get(UUID(str(r.rid)))
            # Every row of a group normalises to the same text: the sample's is the group's.
            raw = sample.last_error if sample is not None else None
            groups.append(
                FailureGroup(
                    fingerprint=r.fp,
                    error_class=error_class(raw),
                    error=describe_error(raw),
                    event_name=value if by == "event" else None,
                    tenant_id=value if by == "tenant" else None,
                    count=int(r.n),
                    first_failed_at=r.first,
                    last_failed_at=r.last,
                    sample=sample,
                )
            )
        return FailureGroups(
            selection=selection.describe(),
            group_by=by,
            # No group at all means no row (the limit is at least 1).
            rows=int(found[0].rows) if found else 0,
            group_count=int(found[0].groups) if found else 0,
            groups=groups,
        )

    # -- replay ------------------------------------------------------------------------

    async def plan_replay(self, selection: OutboxSelection, *, sample: int = 5) -> ReplayPlan:
        """How many rows a replay of ``selection`` would touch, and the first ``sample``
        (0 to :data:`PLAN_SAMPLE_MAX`; anything else is a ValidationError)."""
        if isinstance(sample, bool) or not isinstance(sample, int):
            raise ValidationError(f"sample must be an integer, got {type(sample).__name__}")
        if not 0 <= sample <= PLAN_SAMPLE_MAX:
            raise ValidationError(
                f"sample {sample} is out of range: use 0 to {PLAN_SAMPLE_MAX:,} rows"
            )
        t = self.table
        where = selection.where(t)
        async with self._connect() as conn:
            count = await self._count(conn, where)
            key = walk_column(t, selection)
            first = await conn.execute(select(t).where(where).order_by(key, t.c.id).limit(sample))
            rows = [_to_row(r) for r in first.all()]
        return ReplayPlan(selection=selection.describe(), count=count, sample=rows)

    async def replay(
        self,
        selection: OutboxSelection,
        *,
        progress: Progress | None = None,
        expected: int | None = None,
    ) -> BulkChangeReport:
        """Put the selected rows back to pending, each with a fresh ``delivery_id``.

        Cleared: ``published_at``, ``attempts`` (to 0), ``last_error``, ``dead_at``,
        ``next_attempt_at`` and the lease. The envelope (with the event's own id) is not
        touched, so consumers still de-duplicate by event id, while the broker, which
        de-duplicates by delivery id, accepts the re-send. ``expected`` (from
        :meth:`plan_replay`) saves a count for the progress callback.
        """
        if expected is not None and (
            isinstance(expected, bool) or not isinstance(expected, int) or expected < 0
        ):
            raise ValidationError(f"expected must be a count of rows (0 or more), got {expected!r}")
        t = self.table
        where = selection.where(t)
        key = walk_column(t, selection)
        started = time.perf_counter()
        longest = 0.0
        done = batches = 0
        # On PostgreSQL a batch is one statement: in autocommit it is its own transaction
        # without the BEGIN and COMMIT round trips.
        async with self._connect(autocommit=self._is_postgres) as conn:
            if expected is None:
                expected = await self._count(conn, where)
                await conn.commit()
            last: tuple[Any, UUID] | None = None
            sizer = BatchSizer(self.batch_size)
            size = sizer.size
            while True:
                async with conn.begin():
                    changed, picked, last, took = await replay_batch(
                        conn, t, key, where, last, size
                    )
                longest = max(longest, took)
                if picked == 0:
                    break
                done += changed
                batches += 1
                if progress is not None:
                    progress(done, max(expected, done))
                if picked < size:
                    break
                size = sizer.next(picked, took)
        return BulkChangeReport(
            operation="replay",
            rows=done,
            batches=batches,
            seconds=time.perf_counter() - started,
            longest_statement_seconds=longest,
        )

    # -- purge -------------------------------------------------------------------------

    def _purge_conditions(
        self, cutoff: datetime, include_dead: bool
    ) -> list[tuple[str, ColumnElement[Any], ColumnElement[bool]]]:
        c = self.table.c
        parts: list[tuple[str, ColumnElement[Any], ColumnElement[bool]]] = [
            ("published", c.published_at, c.published_at < cutoff)
        ]
        if include_dead:
            # Dead rows are never published; the published_at check keeps a replayed or
            # delivered row out of this branch.
            parts.append(("dead", c.dead_at, (c.dead_at < cutoff) & c.published_at.is_(None)))
        return parts

    async def plan_purge(
        self, older_than: timedelta, *, include_dead: bool = False, now: datetime | None = None
    ) -> PurgePlan:
        """How many rows a purge would delete."""
        cutoff = _cutoff(older_than, now)
        counts: dict[str, int] = {"published": 0, "dead": 0}
        async with self._connect() as conn:
            for kind, _, where in self._purge_conditions(cutoff, include_dead):
                counts[kind] = await self._count(conn, where)
        return PurgePlan(
            cutoff=cutoff,
            include_dead=include_dead,
            published=counts["published"],
            dead=counts["dead"],
        )

    async def purge(
        self,
        older_than: timedelta,
        *,
        include_dead: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
        expected: int | None = None,
    ) -> BulkChangeReport:
        """Delete rows published (and, if asked, dead) more than ``older_than`` ago.

        Batches walk the ``published_at`` (``dead_at``) index upward from the oldest row,
        so each batch starts where the previous one ended instead of re-reading the index
        entries of rows already deleted.
        """
        cutoff = _cutoff(older_than, now)
        started = time.perf_counter()
        longest = 0.0
        done = batches = 0
        async with self._connect(autocommit=self._is_postgres) as conn:  # as in replay
            if expected is None:
                expected = 0
                for _, _, where in self._purge_conditions(cutoff, include_dead):
                    expected += await self._count(conn, where)
                await conn.commit()
            sizer = BatchSizer(self.batch_size)
            for _, key, where in self._purge_conditions(cutoff, include_dead):
                floor: datetime | None = None
                while True:
                    async with conn.begin():
                        removed, floor, took = await delete_batch(
                            conn, self.table, key, where, floor, sizer.size
                        )
                    longest = max(longest, took)
                    if removed == 0:
                        break
                    done += removed
                    batches += 1
                    sizer.next(removed, took)
                    if progress is not None:
                        progress(done, max(expected, done))
        return BulkChangeReport(
            operation="purge",
            rows=done,
            batches=batches,
            seconds=time.perf_counter() - started,
            longest_statement_seconds=longest,
        )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cutoff(older_than: timedelta, now: datetime | None) -> datetime:
    if not isinstance(older_than, timedelta):
        raise ValidationError(f"the age to purge is a timedelta, got {type(older_than).__name__}")
    if now is not None and not isinstance(now, datetime):
        raise ValidationError(f"now must be a datetime, got {type(now).__name__}")
    if older_than < timedelta(0):
        raise ValidationError("the age to purge must not be negative")
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        # Refused here rather than by the column type mid-purge, as a StatementError.
        raise ValidationError(f"now must be timezone-aware, got {now.isoformat()}")
    return ago(older_than, now=now, what="age to purge")


def _to_row(row: Row[Any]) -> OutboxRow:
    m = row._mapping
    return OutboxRow(
        id=m["id"],
        event_name=m["event_name"],
        event_version=int(m["event_version"]),
        payload=m["payload"],
        occurred_at=m["occurred_at"],
        recorded_at=m["recorded_at"],
        correlation_id=m["correlation_id"],
        causation_id=m["causation_id"],
        tenant_id=m["tenant_id"],
        published_at=m["published_at"],
        attempts=int(m["attempts"]),
        last_error=m["last_error"],
        delivery_id=m["delivery_id"],
        ordering_key=m["ordering_key"],
        next_attempt_at=m["next_attempt_at"],
        locked_until=m["locked_until"],
        locked_by=m["locked_by"],
        dead_at=m["dead_at"],
        replay_count=int(m["replay_count"]),
        first_failed_at=m["first_failed_at"],
        headers=_headers(m.get("headers")),
    )


def _headers(value: Any) -> Any:
    """The stored headers: an object as a dict, NULL as ``{}``, anything else (written by
    hand: a string, a list) as it is, to be seen rather than break the listing."""
    return {} if value is None else value


@asynccontextmanager
async def open_outbox_store(
    settings: DatabaseSettings | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> AsyncIterator[OutboxStore]:
    """A store on its own engine (from ``settings``), disposed on exit: for tools and scripts."""
    settings = settings or DatabaseSettings()
    engine = create_engine(settings)
    try:
        yield OutboxStore(engine, settings.outbox_table, batch_size=batch_size)
    finally:
        await engine.dispose()
