"""The outbox relay: pending rows to a broker, at least once, de-duplicated, optionally
ordered per key, with any number of relays side by side (PostgreSQL).

One round of work:

1. **Claim** up to ``batch_size`` due rows with one statement (on a connection the relay
   holds in autocommit): ``SELECT … FOR UPDATE SKIP LOCKED`` picks rows no other relay is
   claiming, and the same statement writes a lease (``locked_until``, ``locked_by``).
   Rows are chosen by *state* (pending, due, not leased), never by an id high-water mark,
   so a row whose transaction commits late (with a smaller id than rows already relayed)
   is still found.
2. **Publish** outside any transaction, the whole batch pipelined, each message carrying
   the row's ``delivery_id`` as ``Nats-Msg-Id``. A re-publish (after a crash, or after a
   lease ran out) is dropped by JetStream's duplicate window and acked as a duplicate,
   which counts as delivered. The lease is a fence: a message whose lease ran out by this
   process's monotonic clock is not written to the socket.
3. **Mark** the acked rows published, only where this relay still holds the lease (run
   again on a fresh connection if the first one died). An event's own failure costs it
   one attempt and a backoff (dead at ``max_attempts``); one that can never be delivered
   (too large) is dead at once; a broker failure costs nothing: the rows are released.

Up to ``pipeline_depth`` batches are in flight at once: the next claim runs while the
broker acknowledges the previous batch. A finished batch wakes the loop at once.

**Outages:** while the broker is unreachable nothing is claimed; the publisher is probed,
the outage is logged once, then at most every ``outage_reminder_seconds``, and once more
when the broker is back. A database outage is reported the same way.

**Ordered mode** claims only the head of each ordering key: a row is claimable only when
no earlier row with the same key is still pending. While the head is in flight (leased)
or backing off, the key's later rows wait; since a row is marked published only after the
stream acknowledged it, the next row of a key is never published before the previous one
is stored, whichever relay takes it. A dead row releases its key (a poison event must not
block its aggregate for ever); replaying it later delivers it after its successors.

**Wake-ups:** on PostgreSQL the recorder sends ``NOTIFY`` in the writer's transaction and
the relay ``LISTEN``s on a dedicated connection, so new rows are claimed as they commit;
polling every ``poll_interval_seconds`` is only the fallback (retries coming due, leases
running out); a lost listening connection is re-opened at once. SQLite has no ``SKIP
LOCKED`` and no ``NOTIFY``: run one relay per database file; it polls.

Leases must stay well inside the stream's duplicate window (at most half of it; see
:func:`check_lease`), so that a re-publish after a crash still lands inside the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import (
    ColumnElement,
    Interval,
    Table,
    Text,
    any_,
    cast,
    exists,
    func,
    inspect as sa_inspect,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID as PG_UUID

from qxdb.core import defaults
from qxdb.core.failures import is_unavailable
from qxdb.durations import format_duration
from qxdb.engine import unavailable_error
from qxdb.errors import BrokerUnavailableError, ConfigurationError, DatabaseUnavailableError
from qxdb.ids import utcnow
from qxdb.outbox.batches import picked_by_id
from qxdb.outbox.metrics import RelayMetrics, RelayMetricsSnapshot
from qxdb.outbox.publishers import (
    BROKER_FAULT,
    LEASE_EXPIRED,
    REJECTED,
    OutboundMessage,
    Publisher,
    PublishOutcome,
    subject_for,
)
from qxdb.outbox.recorder import notify_channel
from qxdb.outbox.table import LAST_ERROR_MAX, failure_marks, outbox_table, pending_clause
from qxdb.outbox.tracing import ProducerSpans, tracing_available
from qxdb.types import UTCDateTime
from qxdb.urls import redact_secrets

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import (
        AsyncConnection,
        AsyncEngine,
        AsyncSession,
        async_sessionmaker,
    )

    from qxdb.settings import DatabaseSettings

__all__ = ["OutboxRelay", "RelayConfig", "RelayCounters", "check_lease", "relay_to_nats"]

log = logging.getLogger("qxdb.outbox.relay")
# What a JetStream server uses when a stream sets no duplicate window.
_NATS_DEFAULT_DUPLICATE_WINDOW = 120.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a relay claims, retries and waits."""

    batch_size: int = defaults.RELAY_BATCH_SIZE
    max_attempts: int = defaults.RELAY_MAX_ATTEMPTS
    ordered: bool = False
    lease_seconds: float = defaults.RELAY_LEASE_SECONDS
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    poll_interval_seconds: float = defaults.RELAY_POLL_INTERVAL_SECONDS
    pipeline_depth: int = 3
    log_interval_seconds: float = 10.0
    worker_id: str | None = None
    # During an outage: how often the broker is probed, and how often it is said again.
    broker_probe_seconds: float = 0.5
    outage_reminder_seconds: float = 30.0

    def __post_init__(self) -> None:
        # The one place the ranges live (the command passes its options straight here):
        # a wrong type, NaN, infinity or a value no relay can run with is a
        # ConfigurationError before anything connects, never a TypeError or an
        # OverflowError deep in the loop.
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(
                    f"relay {name} must be an integer, got {type(value).__name__}"
                )
            if not low <= value <= high:
                raise ConfigurationError(
                    f"relay {name} {value} is out of range: use {low:,} to {high:,}"
                )
        for name, (shortest, longest) in _SECONDS_RANGES.items():
            seconds = getattr(self, name)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ConfigurationError(
                    f"relay {name} must be a number of seconds, got {type(seconds).__name__}"
                )
            if not math.isfinite(seconds) or not shortest <= seconds <= longest:
                raise ConfigurationError(
                    f"relay {name} {seconds!r} is out of range: use {shortest:g} to {longest:g} seconds"
                )
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ConfigurationError(
                f"relay backoff_base_seconds ({self.backoff_base_seconds:g}) is above "
                f"backoff_max_seconds ({self.backoff_max_seconds:g})"
            )
        if not isinstance(self.ordered, bool):
            raise ConfigurationError(
                f"relay ordered must be a bool, got {type(self.ordered).__name__}"
            )
        if self.worker_id is not None and (
            not isinstance(self.worker_id, str) or not self.worker_id.strip()
        ):
            raise ConfigurationError("relay worker_id must be a non-empty string")


# Inclusive ranges of RelayConfig's fields. batch_size: a claim binds its ids one per
# parameter on SQLite (at most 32,766), and a claim of more than 10,000 rows only holds
# leases longer. Seconds: at most a week, so every lease and delay stays a valid
# timestamp and interval on both dialects.
_WEEK = 7 * 24 * 3600.0
_INT_RANGES: dict[str, tuple[int, int]] = {
    "batch_size": (1, 10_000),
    "max_attempts": (1, 1_000_000),
    "pipeline_depth": (1, 64),
}
_SECONDS_RANGES: dict[str, tuple[float, float]] = {
    "lease_seconds": (0.1, _WEEK),
    "backoff_base_seconds": (0.0, _WEEK),
    "backoff_max_seconds": (0.0, _WEEK),
    "poll_interval_seconds": (0.01, 3600.0),
    "log_interval_seconds": (0.01, _WEEK),
    "broker_probe_seconds": (0.01, 3600.0),
    "outage_reminder_seconds": (0.01, _WEEK),
}


@dataclass(slots=True)
class RelayCounters:
    """What a relay has done since it started; ``lag_seconds`` is the age of the oldest
    event of the last acknowledged batch when its ack arrived (how far behind it runs)."""

    claimed: int = 0
    published: int = 0
    duplicates: int = 0
    retried: int = 0
    dead: int = 0
    lease_lost: int = 0
    fenced: int = 0
    released: int = 0
    batches: int = 0
    lag_seconds: float = 0.0
    stopped_by: str | None = None

    def snapshot(self) -> RelayCounters:
        return replace(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        # One number format (thousands separators) and one lag format (qxdb outbox stats's
        # 1h2m3s) for every place an operator reads these.
        lag = format_duration(timedelta(seconds=self.lag_seconds))
        return (
            f"published={self.published:,} retried={self.retried:,} dead={self.dead:,} "
            f"lag={lag} duplicates={self.duplicates:,} "
            f"lease_lost={self.lease_lost + self.fenced:,}"
        )


class _Row(NamedTuple):
    id: uuid.UUID
    event_name: str
    payload: str
    delivery_id: uuid.UUID | None
    ordering_key: str | None
    attempts: int
    recorded_at: datetime
    headers: dict[str, str] | None


@dataclass(slots=True)
class _Failure:
    row: _Row
    error: str
    dead: bool
    delay: float = 0.0


class _Outage:
    """A dependency (the broker, the database) that went away: one line when it goes,
    a reminder at most every ``remind`` seconds, one line when it is back."""

    def __init__(self, what: str, remind: float) -> None:
        self.what = what
        self.remind = remind
        self.since: float | None = None
        self.reminded = 0.0
        self.last_failure = 0.0
        self.reason = ""

    @property
    def active(self) -> bool:
        return self.since is not None

    def down(self, reason: str) -> None:
        now = time.monotonic()
        self.reason = reason or self.reason
        self.last_failure = now
        if self.since is None:
            self.since = self.reminded = now
            log.warning(
                "relay: %s unavailable, claiming nothing until it is back: %s",
                self.what,
                self.reason,
            )
        elif now - self.reminded >= self.remind:
            self.reminded = now
            log.warning(
                "relay: %s still unavailable after %.0f s: %s",
                self.what,
                now - self.since,
                self.reason,
            )

    def up(self) -> None:
        if self.since is not None:
            log.warning("relay: %s back after %.1f s", self.what, time.monotonic() - self.since)
            self.since = None


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxRelay:
    """Moves pending outbox rows to a :class:`~qxdb.outbox.publishers.Publisher`.

    ``await relay.run()`` until :meth:`stop` (or ``run(once=True)`` to drain and return).
    ``relay.counters`` is live; ``on_batch`` is called with a snapshot after every batch.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        subject_prefix: str,
        table: Table | str | None = None,
        config: RelayConfig | None = None,
        on_batch: Callable[[RelayCounters], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.publisher = publisher
        self.subject_prefix = subject_prefix
        # None: the configured table (QX_DB__OUTBOX_TABLE), as every outbox entry point.
        self.table = table if isinstance(table, Table) else outbox_table(table)
        self.config = config or RelayConfig()
        self.worker_id = (self.config.worker_id or default_worker_id())[:64]
        self.counters = RelayCounters()
        self.metrics = RelayMetrics()
        self.on_batch = on_batch
        bind = session_factory.kw.get("bind")
        if bind is None:
            raise ConfigurationError("the relay needs a session factory bound to an engine")
        self.engine: AsyncEngine = bind
        self.dialect = self.engine.dialect.name
        self._subjects: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_log = time.monotonic()
        self._broker = _Outage("broker", self.config.outage_reminder_seconds)
        self._database = _Outage("database", self.config.outage_reminder_seconds)
        # A failure that ends a --once run (exit 3), noticed by a batch task.
        self._fatal: BaseException | None = None
        self._conns: dict[str, AsyncConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Does the table have first_failed_at (dead-letter triage)? Read at the first
        # failure: a table not yet migrated for triage is still relayed.
        self._records_first_failure: bool | None = None
        self._claim_cache: dict[bool, Any] = {}

    # ------------------------------------------------------------------ control

    def stop(self, reason: str | None = None) -> None:
        """Stop claiming; the batches in flight finish, then leases are released.

        ``reason`` (e.g. ``"SIGTERM"``) is reported as ``counters.stopped_by``.
        """
        if reason is not None and self.counters.stopped_by is None:
            self.counters.stopped_by = reason
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Claim now instead of at the next poll (the NOTIFY listener calls this)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def broker_connected(self) -> bool:
        """False from the moment a broker outage is noticed until it is over."""
        return not self._broker.active

    @property
    def database_connected(self) -> bool:
        """False from the moment a database outage is noticed until it is over."""
        return not self._database.active

    def metrics_snapshot(self) -> RelayMetricsSnapshot:
        """The relay's numbers now (see :mod:`qxdb.outbox.metrics`), for a service to
        export its own way; ``qxdb outbox relay --metrics-port`` serves the same."""
        m = self.metrics
        totals = m.totals()
        now = time.monotonic()
        return RelayMetricsSnapshot(
            worker_id=self.worker_id,
            running=m.running,
            published=totals.published,
            duplicates=totals.duplicates,
            failed=totals.failed,
            dead=totals.dead,
            lease_lost=self.counters.lease_lost + self.counters.fenced,
            claimed=self.counters.claimed,
            batches=self.counters.batches,
            by_event={k: replace(v) for k, v in m.by_event.items()},
            claim_seconds=m.claim.snapshot(),
            publish_seconds=m.publish.snapshot(),
            mark_seconds=m.mark.snapshot(),
            broker_connected=self.broker_connected,
            database_connected=self.database_connected,
            heartbeat_age_seconds=max(0.0, now - m.heartbeat),
            uptime_seconds=now - m.started,
        )

    async def run(self, *, once: bool = False) -> RelayCounters:
        """Relay until stopped; with ``once``, until nothing is claimable or leased.

        With ``once``, an unreachable broker raises
        :class:`~qxdb.errors.BrokerUnavailableError` and a database that stays unreachable
        (after one retry on a fresh connection) raises
        :class:`~qxdb.errors.DatabaseUnavailableError`, once the batches in flight are done.
        """
        listener = await self._listen() if not once else None
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(self.config.pipeline_depth)

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slots.release()
            # A finished batch can make more rows claimable (the next head of a key in
            # ordered mode), also when it finished while a claim was running.
            self._wake.set()

        patience = 0.02
        self.metrics.running = True
        try:
            while not self._stop.is_set():
                self.metrics.beat()
                if self._fatal is not None:
                    raise self._fatal
                if not self._broker.active and not await self._broker_ready():
                    self._broker.down(self._broker.reason or "not connected")
                if self._broker.active and not await self._broker_back(once, in_flight):
                    continue
                await slots.acquire()
                if self._stop.is_set():
                    slots.release()
                    break
                self._wake.clear()
                try:
                    rows, deadline = await self._claim()
                except Exception as exc:
                    slots.release()
                    if not is_unavailable(exc):
                        raise
                    if once:
                        raise self._database_error(exc) from None
                    self._database.down(_short(exc))
                    await self._pause(min(self.config.poll_interval_seconds, 1.0))
                    continue
                self._database.up()
                if rows:
                    patience = 0.02
                    task = asyncio.create_task(self._deliver(rows, deadline, once=once))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                    if len(rows) < self.config.batch_size:
                        # That was all the claimable work: another claim now would find
                        # nothing (and slow the database for the batches in flight). Wait
                        # for a batch to finish, a NOTIFY or a stop.
                        await self._wake.wait()
                    continue
                slots.release()
                if in_flight:
                    # Look again as soon as a batch completes (or a NOTIFY arrives).
                    await self._wake.wait()
                    continue
                if once:
                    wait = await self._seconds_until_more_work()
                    if wait is None:
                        break
                    # Rows held by other relays are usually marked within milliseconds
                    # (and make the next heads claimable): look again soon, then less often.
                    waited = min(wait, patience, self.config.poll_interval_seconds)
                    await self._idle(max(waited, 0.02))
                    patience *= 2
                    continue
                if self.dialect == "postgresql" and (listener is None or listener.is_closed()):
                    # The listening connection died (server restart, network): open it
                    # again; a row committed meanwhile is found by the claim right after.
                    listener = await self._listen(quiet=True)
                    if listener is not None:
                        continue
                await self._idle(self.config.poll_interval_seconds)
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            if self._fatal is not None:
                raise self._fatal
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            try:
                self.counters.released += await self._retrying(lambda: self._release(None))
            except Exception as exc:
                # Not fatal (the leases expire), but another relay waits for them: say so.
                log.warning(
                    "relay: leases not released at stop, they expire within %g s: %s",
                    self.config.lease_seconds,
                    _short(exc),
                )
            self.metrics.running = False
            await self._close_connections()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
            self._log_counters(force=True)
        return self.counters.snapshot()

    async def _broker_ready(self) -> bool:
        """Ask the publisher, if it can tell, whether the broker takes messages now (for
        NATS a look at the client's state): rows are never claimed for a broker known
        to be down."""
        ready = getattr(self.publisher, "ready", None)
        return True if ready is None else bool(await ready())

    async def _broker_back(self, once: bool, in_flight: set[asyncio.Task[None]]) -> bool:
        """During a broker outage: True when it answers again; else wait a little.

        Nothing is claimed meanwhile: claiming rows only to release them again would
        churn the table (every writer's NOTIFY would cause a claim and a release).
        """
        ready = getattr(self.publisher, "ready", None)
        if ready is not None:
            back = await self._broker_ready()
        else:
            # A publisher that cannot be asked is probed by the next batch, after a pause.
            back = time.monotonic() - self._broker.last_failure >= self.config.broker_probe_seconds
        if back and ready is not None:
            self._broker.up()
            return True
        if back:
            # One probing batch; its outcome ends the outage (or restarts the pause).
            self._broker.last_failure = time.monotonic()
            return True
        if once:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise BrokerUnavailableError(f"the broker is unavailable: {self._broker.reason}")
        self._broker.down(self._broker.reason)
        await self._pause(self.config.broker_probe_seconds)
        return False

    async def _pause(self, seconds: float) -> None:
        """Sleep that only a stop ends (a NOTIFY must not end it: see _broker_back)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _database_error(self, exc: BaseException) -> DatabaseUnavailableError:
        return unavailable_error(exc, self.engine.url.render_as_string(hide_password=False))

    async def _retrying(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run a short transaction; if its connection died (a killed backend, a restart),
        run it once more on a fresh one. Every statement run this way is idempotent."""
        try:
            return await work()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.debug("relay: connection lost, retrying on a fresh one: %s", _short(exc))
        return await work()

    # ------------------------------------------------------------------ listening

    async def _listen(self, *, quiet: bool = False) -> Any:
        if self.dialect != "postgresql":
            return None
        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            import asyncpg

            conn = await asyncpg.connect(dsn)
            await conn.add_listener(notify_channel(self.table), self._on_notify)
            # A lost listener ends the idle wait, so the loop reopens it at once.
            conn.add_termination_listener(self._on_notify)
        except Exception as exc:
            if not quiet:
                # A driver's message may quote the DSN it was given, password included.
                log.warning(
                    "relay: cannot LISTEN, polling instead: %s", redact_secrets(_short(exc), dsn)
                )
            return None
        return conn

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ SQL

    def _now(self) -> ColumnElement[Any]:
        # PostgreSQL: the database clock, shared by every relay host. SQLite: one worker,
        # its own clock (CURRENT_TIMESTAMP's text format would not compare correctly).
        if self.dialect == "postgresql":
            return func.now()
        return literal(utcnow(), UTCDateTime())

    def _after(self, seconds: float) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return func.now() + literal(timedelta(seconds=seconds), Interval())
        return literal(utcnow() + timedelta(seconds=seconds), UTCDateTime())

    def _ids_match(self, ids: Sequence[uuid.UUID], source: Any = None) -> ColumnElement[bool]:
        id_column: ColumnElement[Any] = (self.table if source is None else source).c.id
        if self.dialect == "postgresql":
            return id_column == any_(literal(list(ids), ARRAY(PG_UUID(as_uuid=True))))
        return id_column.in_(ids)

    def _rows_match(self, rows: Sequence[_Row]) -> list[ColumnElement[bool]]:
        """Conditions matching exactly these claimed rows.

        On PostgreSQL the ids come with a bound on ``recorded_at``: on a partitioned
        outbox an id alone is probed in every partition (a mark of 500 rows cost three
        times the plain table's over 10 partitions); the bound prunes the statement to
        the one or two partitions a batch lies in. On a plain table it is one more
        index condition.
        """
        t = self.table
        where = [self._ids_match([r.id for r in rows])]
        if self.dialect == "postgresql" and rows:
            stamps = [r.recorded_at for r in rows]
            where += [t.c.recorded_at >= min(stamps), t.c.recorded_at <= max(stamps)]
        return where

    async def _candidates(
        self, session: AsyncConnection | AsyncSession, *, skip_scan: bool = True
    ) -> Any:
        """Ids of rows this relay may take now: pending, due, unleased (heads only when
        ordered), oldest first.

        Ordered, on PostgreSQL, heads come from the oldest pending rows (``skip_scan``
        false: the cheap window) or from every key with pending rows (the skip scan).
        """
        t = self.table
        c = t.alias("candidate")
        now = self._now()
        candidate = select(c.c.id).where(
            pending_clause(c),
            or_(c.c.next_attempt_at.is_(None), c.c.next_attempt_at <= now),
            or_(c.c.locked_until.is_(None), c.c.locked_until < now),
        )
        if self.config.ordered and self.dialect == "postgresql" and not skip_scan:
            candidate = candidate.where(c.c.id.in_(self._window_heads()))
        elif self.config.ordered and self.dialect == "postgresql":
            # The heads are read by a statement of their own and handed back as an array:
            # combined into one statement, the planner may re-run the skip scan once per
            # pending row (seen: 200 s for 20,000 rows on a table without statistics).
            heads = list((await session.execute(self._key_heads())).scalars())
            candidate = candidate.where(self._ids_match(heads, c))
        elif self.config.ordered:
            earlier = t.alias("earlier")
            candidate = candidate.where(
                ~exists().where(
                    earlier.c.ordering_key == c.c.ordering_key,
                    earlier.c.id < c.c.id,
                    pending_clause(earlier),
                )
            )
        return candidate.order_by(c.c.id), c

    def _window_heads(self) -> Any:
        """Heads among the oldest pending rows (PostgreSQL): the cheap ordered claim.

        The window holds the ``4 x batch_size`` oldest pending rows by id, so every older
        pending row of a key in it is in it too: a key's first row in the window *is* its
        head. Cost grows with the window, not with the keys or the backlog (20,000
        pending rows in 200 keys: a few ms, against 20-60 ms for the skip scan). Keys
        whose head lies beyond the window wait for it to move on; when the window yields
        little (few keys, or a stuck key filling it) the skip scan tops the claim up.
        """
        t = self.table
        window = (
            select(t.c.id, t.c.ordering_key, t.c.next_attempt_at, t.c.locked_until)
            .where(pending_clause(t))
            .order_by(t.c.id)
            .limit(self.config.batch_size * 4)
            .subquery("window")
        )
        # Rows without a key are not ordered: each is a head of its own.
        key = func.coalesce(window.c.ordering_key, cast(window.c.id, Text))
        place = func.row_number().over(partition_by=key, order_by=window.c.id)
        ranked = select(
            window.c.id, window.c.next_attempt_at, window.c.locked_until, place.label("place")
        ).subquery("ranked")
        heads = select(ranked).where(ranked.c.place == 1).subquery("heads")
        now = self._now()
        # A head in flight or backing off holds its key: its next row is not taken instead.
        return select(heads.c.id).where(
            or_(heads.c.next_attempt_at.is_(None), heads.c.next_attempt_at <= now),
            or_(heads.c.locked_until.is_(None), heads.c.locked_until < now),
        )

    def _key_heads(self) -> Any:
        """The oldest pending row of every ordering key (PostgreSQL).

        A skip scan over the partial ``(ordering_key, id)`` index: a recursive CTE hops
        from one distinct pending key to the next, and a LATERAL probe takes each key's
        first pending row. Cost grows with the number of keys that have pending rows,
        not with the number of pending rows (an anti-join over every pending row took
        100 ms per claim for 20,000 rows in 200 keys; this takes a few).
        """
        t = self.table
        k0, k1, h = t.alias("k0"), t.alias("k1"), t.alias("h")

        def pending(a: Any) -> ColumnElement[bool]:
            return pending_clause(a)

        first = (
            select(k0.c.ordering_key.label("key"))
            .where(pending(k0), k0.c.ordering_key.is_not(None))
            .order_by(k0.c.ordering_key)
            .limit(1)
        )
        keys = first.cte("pending_keys", recursive=True)
        following = (
            select(k1.c.ordering_key)
            .where(pending(k1), k1.c.ordering_key > keys.c.key)
            .order_by(k1.c.ordering_key)
            .limit(1)
            .scalar_subquery()
        )
        keys = keys.union_all(select(following).where(keys.c.key.is_not(None)))
        head = (
            select(h.c.id)
            .where(pending(h), h.c.ordering_key == keys.c.key)
            .order_by(h.c.id)
            .limit(1)
            .lateral("head")
        )
        # Rows without a key are not ordered: any due, unleased one will do.
        now = self._now()
        unkeyed = (
            select(t.c.id)
            .where(pending(t), t.c.ordering_key.is_(None))
            .where(or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now))
            .where(or_(t.c.locked_until.is_(None), t.c.locked_until < now))
            .order_by(t.c.id)
            .limit(self.config.batch_size)
        )
        return select(head.c.id).select_from(keys).join(head, true()).union_all(unkeyed)

    async def _on(self, role: str, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work`` on this relay's own autocommit connection for ``role`` ("claim",
        "mark"), one at a time, re-opened (and the work retried once) if it died.

        Each claim and mark is one statement (a few when events fail), atomic by itself
        and guarded by the lease, so no transaction is needed: held connections in
        autocommit save the pool's checkout ping, BEGIN and COMMIT, three round trips of
        four, on every batch.
        """
        lock = self._locks.setdefault(role, asyncio.Lock())

        async def attempt() -> _T:
            conn = self._conns.get(role)
            if conn is None or conn.closed or conn.invalidated:
                conn = await self.engine.execution_options(isolation_level="AUTOCOMMIT").connect()
                self._conns[role] = conn
            try:
                return await work(conn)
            except Exception:
                # A connection that failed mid-statement is not trusted again.
                self._conns.pop(role, None)
                with contextlib.suppress(Exception):
                    await conn.invalidate()
                raise

        async with lock:
            return await self._retrying(attempt)

    async def _close_connections(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _claim(self) -> tuple[list[_Row], float]:
        """Claim a batch; also return when its lease ends by this process's monotonic
        clock (read before the claim is sent, so never later than the database's)."""

        async def attempt(conn: AsyncConnection) -> tuple[list[_Row], float]:
            started = time.monotonic()
            rows = await self._claim_in(conn)
            return rows, started + self.config.lease_seconds

        started = time.monotonic()
        rows, deadline = await self._on("claim", attempt)
        self.metrics.claim.observe(time.monotonic() - started)
        rows.sort(key=lambda r: r.id)
        self.counters.claimed += len(rows)
        return rows, deadline

    async def _claim_in(self, session: AsyncConnection) -> list[_Row]:
        size = self.config.batch_size
        if not (self.config.ordered and self.dialect == "postgresql"):
            return await self._claim_from(session, size, skip_scan=True)
        rows = await self._claim_from(session, size, skip_scan=False)
        if len(rows) < max(1, size // 10) and len(rows) < size:
            # The window gave little: few keys, or a key stuck behind a failing head filling
            # it. Every key with pending rows gets its chance through the skip scan (rows
            # just claimed are leased now, so they are not taken twice).
            rows += await self._claim_from(session, size - len(rows), skip_scan=True)
        return rows

    async def _claim_from(
        self, session: AsyncConnection, limit: int, *, skip_scan: bool
    ) -> list[_Row]:
        cacheable = self.dialect == "postgresql" and limit == self.config.batch_size
        stmt = self._claim_cache.get(skip_scan) if cacheable else None
        if stmt is None:
            stmt = await self._claim_statement(session, limit, skip_scan=skip_scan)
            # A statement without per-call values (the database clock, no ids) is built
            # once: rebuilding it costs more CPU than running it through the cache.
            if cacheable and not (skip_scan and self.config.ordered):
                self._claim_cache[skip_scan] = stmt
        result = await session.execute(stmt)
        return [_Row(*r) for r in result.all()]

    async def _claim_statement(
        self, session: AsyncConnection, limit: int, *, skip_scan: bool
    ) -> Any:
        t = self.table
        candidate, c = await self._candidates(session, skip_scan=skip_scan)
        candidate = candidate.limit(limit).with_for_update(skip_locked=True, of=c)
        if self.dialect == "postgresql":
            # The rows are picked (and row-locked) once, in a CTE, and found by
            # picked_by_id. With ``id IN (SELECT …)`` the planner hashed every row of a
            # partitioned outbox per claim (a sequential scan of all its partitions: 30 ms
            # at 100,000 rows, growing with the table).
            picked = candidate.add_columns(c.c.recorded_at).cte("picked")
            where = picked_by_id(t, picked.c.id, picked.c.recorded_at)
        else:
            where = [t.c.id.in_(candidate.scalar_subquery())]
        return (
            update(t)
            .where(*where)
            .values(locked_until=self._after(self.config.lease_seconds), locked_by=self.worker_id)
            .returning(
                t.c.id,
                t.c.event_name,
                cast(t.c.payload, Text),
                t.c.delivery_id,
                t.c.ordering_key,
                t.c.attempts,
                t.c.recorded_at,
                t.c.headers,
            )
        )

    async def _seconds_until_more_work(self) -> float | None:
        """For ``once``: None when nothing is left to do now, else how long to wait.

        A row that another relay is claiming at this very moment is row-locked, so our
        SKIP LOCKED claim skipped it, yet its lease is not committed either: such a row
        still shows as claimable here, and we look again shortly instead of leaving.
        """
        async with self.session_factory() as session:
            candidate, _ = await self._candidates(session)
            claimable = (await session.execute(candidate.limit(1))).first()
        if claimable is not None:
            return 0.02
        return await self._seconds_until_lease_expiry()

    async def _seconds_until_lease_expiry(self) -> float | None:
        """Seconds until the earliest live lease on a pending row ends; None if none."""
        t = self.table
        stmt = select(func.min(t.c.locked_until)).where(
            pending_clause(t), t.c.locked_until > self._now()
        )
        async with self.session_factory() as session:
            until = (await session.execute(stmt)).scalar()
        if until is None:
            return None
        if isinstance(until, str):  # pragma: no cover - SQLite aggregate loses the type
            until = datetime.fromisoformat(until)
        remaining: float = (until - utcnow()).total_seconds()
        return remaining

    def _release_statement(self, rows: Sequence[_Row] | None) -> Any:
        t = self.table
        # Leased rows are pending: the whole condition lets the pending partial index
        # find them when every lease is given up at shutdown.
        where = [t.c.locked_by == self.worker_id, pending_clause(t)]
        if rows is not None:
            where += self._rows_match(rows)
        return update(t).where(*where).values(locked_until=None, locked_by=None)

    async def _release(self, rows: Sequence[_Row] | None) -> int:
        """Give up leases (``rows``, or every lease this relay holds); how many."""
        async with self.session_factory() as session, session.begin():
            result = await session.execute(self._release_statement(rows))
        return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------------ delivery

    def _message(self, row: _Row, not_after: float, spans: ProducerSpans | None) -> OutboundMessage:
        subject = self._subjects.get(row.event_name)
        if subject is None:
            subject = self._subjects[row.event_name] = subject_for(
                self.subject_prefix, row.event_name
            )
        msg_id = str(row.delivery_id or row.id)
        # Only an object is headers (the recorder writes one); anything written by hand
        # instead is not sent, rather than failing the whole batch.
        headers: Mapping[str, str] = row.headers if isinstance(row.headers, dict) else {}
        if spans is not None:
            headers = spans.start(headers, subject, msg_id)
        return OutboundMessage(
            subject=subject,
            payload=row.payload.encode(),
            msg_id=msg_id,
            headers=headers,
            not_after=not_after,
        )

    async def _deliver(self, rows: list[_Row], deadline: float, *, once: bool) -> None:
        try:
            if time.monotonic() >= deadline:
                # The lease is a fence: past it the rows may be another relay's (this one
                # was frozen: GC pause, SIGSTOP, a starved VM). Sending them now could
                # store them twice, beyond the stream's duplicate window.
                self._fenced(len(rows))
                return
            spans = self._spans(rows)
            messages = [self._message(r, deadline, spans) for r in rows]
            started = time.monotonic()
            try:
                outcomes = await self.publisher.publish_batch(messages)
            except BrokerUnavailableError as exc:
                if spans is not None:
                    spans.end([exc.message] * len(rows))
                # The broker is gone, not the events: released, no attempt counted.
                self._broker.down(exc.message)
                await self._retrying(lambda: self._release(rows))
                return
            self.metrics.publish.observe(time.monotonic() - started)
            if spans is not None:
                spans.end([None if o.ok else (o.error or "not published") for o in outcomes])
            if len(outcomes) != len(rows):
                raise RuntimeError("publisher returned a wrong number of outcomes")
            await self._settle(rows, outcomes)
        except Exception as exc:
            if once and is_unavailable(exc):
                self._fatal = self._database_error(exc)
            # Rows stay leased and are re-published (and de-duplicated) after the lease.
            log.error(
                "relay: batch of %d not settled, its leases end within %g s: %s",
                len(rows),
                self.config.lease_seconds,
                _short(exc),
            )

    def _spans(self, rows: list[_Row]) -> ProducerSpans | None:
        """Producer spans for a batch that carries trace context, when OpenTelemetry is
        installed; None otherwise (the common, free case)."""
        if not tracing_available() or not any(r.headers for r in rows):
            return None
        return ProducerSpans()

    async def _settle(self, rows: list[_Row], outcomes: list[PublishOutcome]) -> None:
        delivered: list[_Row] = []
        failures: list[_Failure] = []
        unavailable: list[_Row] = []
        fenced = 0
        duplicates = 0
        oldest: datetime | None = None
        broker_error = ""
        event = self.metrics.event
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.ok:
                delivered.append(row)
                duplicates += outcome.duplicate
                totals = event(row.event_name)
                if outcome.duplicate:
                    totals.duplicates += 1
                else:
                    totals.published += 1
                if oldest is None or row.recorded_at < oldest:
                    oldest = row.recorded_at
            elif outcome.cause == BROKER_FAULT:
                unavailable.append(row)
                broker_error = outcome.error or "broker unavailable"
            elif outcome.cause == LEASE_EXPIRED:
                fenced += 1
            else:
                error = outcome.error or "publish failed"
                failures.append(self._failure(row, error, dead=outcome.cause == REJECTED))
        if unavailable:
            self._broker.down(broker_error)
        else:
            self._broker.up()

        async def write(conn: AsyncConnection) -> int:
            t = self.table
            marked = 0
            if delivered:
                now = self._now()
                result = await conn.execute(
                    update(t)
                    .where(
                        *self._rows_match(delivered),
                        t.c.locked_by == self.worker_id,
                        t.c.locked_until > now,
                    )
                    .values(
                        published_at=now,
                        attempts=t.c.attempts + 1,
                        locked_until=None,
                        locked_by=None,
                        next_attempt_at=None,
                    )
                )
                marked = int(getattr(result, "rowcount", 0) or 0)
            if failures and self._records_first_failure is None:
                self._records_first_failure = await conn.run_sync(self._has_first_failed_at)
            for failure in failures:
                await conn.execute(self._failure_update(failure))
            if unavailable:
                await conn.execute(self._release_statement(unavailable))
            if marked and self.config.ordered and self.dialect == "postgresql":
                # The next rows of these keys are heads now: wake every listening
                # relay, not only when a writer commits or a poll comes.
                await conn.execute(select(func.pg_notify(notify_channel(t), "")))
            return marked

        # Every statement above matches only rows still leased to this relay and clears
        # the lease, so running it again after a lost connection changes nothing twice.
        started = time.monotonic()
        marked = await self._on("mark", write)
        self.metrics.mark.observe(time.monotonic() - started)
        for failure in failures:
            totals = event(failure.row.event_name)
            if failure.dead:
                totals.dead += 1
            else:
                totals.failed += 1
        if fenced:
            self._fenced(fenced)
        self._count(marked, len(delivered), duplicates, failures, oldest)

    def _fenced(self, count: int) -> None:
        self.counters.fenced += count
        log.warning(
            "relay: %d event(s) not published: their %g s lease ran out before they were "
            "sent (this relay was held up); they are no longer ours, the next relay to "
            "claim them sends them",
            count,
            self.config.lease_seconds,
        )

    def _failure(self, row: _Row, error: str, *, dead: bool = False) -> _Failure:
        attempts = row.attempts + 1
        if dead or attempts >= self.config.max_attempts:
            return _Failure(row, error, dead=True)
        base = self.config.backoff_base_seconds * 2 ** (attempts - 1)
        delay = min(self.config.backoff_max_seconds, base)
        # Full jitter on the upper half: retries of one burst do not come back in lockstep.
        delay = delay / 2 + random.random() * delay / 2
        return _Failure(row, error, dead=False, delay=delay)

    def _has_first_failed_at(self, sync_conn: Any) -> bool:
        t = self.table
        columns = sa_inspect(sync_conn).get_columns(t.name, schema=t.schema)
        return any(c["name"] == "first_failed_at" for c in columns)

    def _failure_update(self, failure: _Failure) -> Any:
        t = self.table
        values: dict[str, Any] = {
            "attempts": t.c.attempts + 1,
            "last_error": failure.error[:LAST_ERROR_MAX],
            "locked_until": None,
            "locked_by": None,
        }
        if self._records_first_failure is not False:
            values.update(failure_marks(t, self._now()))
        if failure.dead:
            values["dead_at"] = self._now()
            values["next_attempt_at"] = None
        else:
            values["next_attempt_at"] = self._after(failure.delay)
        return (
            update(t)
            .where(*self._rows_match([failure.row]), t.c.locked_by == self.worker_id)
            .values(**values)
        )

    def _count(
        self,
        marked: int,
        delivered: int,
        duplicates: int,
        failures: list[_Failure],
        oldest: datetime | None,
    ) -> None:
        c = self.counters
        c.batches += 1
        c.published += marked
        c.duplicates += duplicates
        c.lease_lost += delivered - marked
        dead = sum(1 for f in failures if f.dead)
        c.dead += dead
        c.retried += len(failures) - dead
        if oldest is not None:
            c.lag_seconds = max(0.0, (utcnow() - oldest).total_seconds())
        if failures:
            log.warning(
                "relay: %d event(s) failed (%d now dead), e.g. %s: %s",
                len(failures),
                dead,
                failures[0].row.event_name,
                failures[0].error,
            )
        if delivered - marked:
            log.warning(
                "relay: %d event(s) were stored by the stream, but their %g s lease had run "
                "out before they were marked; they stay pending and are sent again, and the "
                "stream drops that copy only if it comes within its duplicate window",
                delivered - marked,
                self.config.lease_seconds,
            )
        if self.on_batch is not None:
            self.on_batch(c.snapshot())
        self._log_counters()

    def _log_counters(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_log >= self.config.log_interval_seconds:
            self._last_log = now
            # Tagged, so a terminal that shows the counters on a live line can skip it.
            log.info(
                "relay %s: %s",
                self.worker_id,
                self.counters.line(),
                extra={"qxdb_counters": True, "qxdb_counts": self.counters.to_dict()},
            )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def relay_to_nats(
    settings: DatabaseSettings,
    *,
    nats_url: str,
    subject_prefix: str,
    config: RelayConfig | None = None,
    stream: str | None = None,
    ensure_stream: bool = True,
    duplicate_window_seconds: float = defaults.RELAY_DUPLICATE_WINDOW_SECONDS,
    once: bool = False,
    handle_signals: bool = True,
    on_batch: Callable[[RelayCounters], None] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = defaults.RELAY_METRICS_HOST,
) -> RelayCounters:
    """Run a relay from the outbox of ``settings`` to NATS JetStream (what the command runs).

    With ``metrics_port`` (0: any free port), serves ``/metrics``, ``/healthz`` and
    ``/readyz`` on ``metrics_host`` while it runs (:mod:`qxdb.outbox.metrics_http`).

    Creates the stream over ``<subject_prefix>.>`` when it is missing (unless
    ``ensure_stream`` is false). SIGINT/SIGTERM stop the relay gracefully. Raises
    :class:`~qxdb.errors.BrokerUnavailableError` when NATS cannot be reached and
    :class:`~qxdb.errors.DatabaseUnavailableError` when the database cannot.
    """
    from qxdb.engine import connect_checked, create_engine, make_session_factory
    from qxdb.outbox.publishers import (
        NatsJetStreamPublisher,
        StreamLimits,
        default_stream_name,
        validate_subject_prefix,
    )
    from qxdb.outbox.selection import OutboxSelection
    from qxdb.outbox.store import OutboxStore

    config = config or RelayConfig()
    validate_subject_prefix(subject_prefix)
    if metrics_port is not None:
        from qxdb.outbox.metrics_http import require_prometheus

        require_prometheus()  # before connecting anywhere: a missing extra is bad usage
    stream_name = stream or default_stream_name(subject_prefix)
    check_lease(config.lease_seconds, duplicate_window_seconds, existing=False)
    engine = create_engine(settings)
    try:
        async with connect_checked(engine):
            pass
        # Also refuses, with one clear line, a missing table or one without delivery state.
        store = OutboxStore(engine, settings.outbox_table, require_triage=False)
        pending = await store.count(OutboxSelection(status="pending"))
        log.info("relay: %d pending event(s) in %s", pending, store.table_name)
        publisher = NatsJetStreamPublisher(nats_url, stream=stream_name)
        await publisher.connect()
        try:
            limits: StreamLimits | None
            if ensure_stream:
                limits = await publisher.ensure_stream(
                    stream_name, subject_prefix, duplicate_window=duplicate_window_seconds
                )
            else:
                limits = await publisher.stream_limits(stream_name)
                if limits is None:
                    # Every publish would fail (and charge its event) until it exists.
                    raise ConfigurationError(
                        f"JetStream stream {stream_name} does not exist: create it, or let "
                        "the relay create it (drop --no-create-stream)"
                    )
            if limits is not None:
                # The window that counts is the one the stream really has, whatever
                # --duplicate-window says (it only shapes a stream the relay creates).
                check_lease(config.lease_seconds, limits.duplicate_window, existing=True)
            relay = OutboxRelay(
                make_session_factory(engine),
                publisher,
                subject_prefix=subject_prefix,
                table=settings.outbox_table,
                config=config,
                on_batch=on_batch,
            )
            server = None
            if metrics_port is not None:
                from qxdb.outbox.metrics_http import MetricsServer

                server = MetricsServer(relay, store, host=metrics_host, port=metrics_port)
                await server.start()
            loop = asyncio.get_running_loop()
            installed: list[signal.Signals] = []
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, relay.stop, sig.name)
                        installed.append(sig)
            try:
                return await relay.run(once=once)
            finally:
                for sig in installed:
                    loop.remove_signal_handler(sig)
                if server is not None:
                    await server.close()
        finally:
            await publisher.close()
    finally:
        await engine.dispose()


def check_lease(lease_seconds: float, duplicate_window: float, *, existing: bool) -> None:
    """Refuse a lease that is not comfortably shorter than the duplicate window.

    A crashed relay's rows are re-sent once its lease ends; the stream drops that copy
    only within its duplicate window of the first. Half the window leaves room for the
    claim, the publish and a slow ack. A window of 0 means the server default (2 min).
    """
    window = duplicate_window if duplicate_window > 0 else _NATS_DEFAULT_DUPLICATE_WINDOW
    if lease_seconds <= window / 2:
        return
    whose = "the existing stream's duplicate window" if existing else "--duplicate-window"
    raise ConfigurationError(
        f"a lease of {lease_seconds:g} s is too long for {whose} of {window:g} s: keep the "
        f"lease at most half the window ({window / 2:g} s), or a re-send after a crash "
        "could be stored twice"
    )
