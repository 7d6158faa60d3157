"""The partitioned outbox on PostgreSQL: partitions made ahead, refused and dropped, and the
recorder and the store working on it unchanged."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import MetaData, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.engine import create_engine, make_session_factory
from qxdb.errors import ConfigurationError, ValidationError
from qxdb.ids import uuid7
from qxdb.outbox.partitions import OutboxPartitions, convert_to_partitioned
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.outbox.recorder import DefaultOutboxRecorder
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import include_outbox_table, outbox_table
from qxdb.settings import DatabaseSettings
from tests.integration.test_relay import (
    StreamScope,
    assert_exactly_once,
    delivery_ids,
    keyed_events,
    record,
    scope,  # noqa: F401 - the fixture, used by name
    status_counts,
    stream_messages,
)


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=postgres_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _row(at: datetime, **state: Any) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "event_name": "orders.placed",
        "payload": {"event_id": str(uuid7())},
        "occurred_at": at,
        "recorded_at": at,
        "delivery_id": uuid7(),
        "published_at": None,
        "dead_at": None,
        "last_error": None,
        "locked_until": None,
        **state,
    }


async def test_partitions_made_ahead_refused_and_dropped(pg: AsyncEngine) -> None:
    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    parts = OutboxPartitions(pg)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    made = (await parts.create_ahead(2)).created
    assert made == [
        "qx_outbox_events_pdefault",
        parts.partition_name(today),
        parts.partition_name(today + timedelta(days=1)),
    ]
    assert (await parts.create_ahead(2)).created == []  # idempotent: cron may run it every hour
    old = today - timedelta(days=10)
    made = (await parts.create_ahead(3, now=old)).created
    assert made == [parts.partition_name(old + timedelta(days=d)) for d in range(3)]

    far_future = today + timedelta(days=40)  # no partition: the default one catches it
    rows = [
        *(_row(old + timedelta(hours=h), published_at=old + timedelta(hours=h)) for h in range(5)),
        _row(old + timedelta(days=1, hours=1), published_at=old + timedelta(days=1)),
        _row(old + timedelta(days=1, hours=2), last_error="TimeoutError: 1"),  # failed
        _row(old + timedelta(days=2, hours=3), locked_until=now + timedelta(minutes=5)),
        _row(old + timedelta(days=2, hours=4), dead_at=old, last_error="KeyError: 'x'"),
        _row(far_future, published_at=far_future),
    ]
    async with pg.begin() as conn:
        await conn.execute(insert(table), rows)
        # The recorder's INSERT leaves recorded_at to the server: today's partition.
        recorded = {k: v for k, v in _row(now).items() if k != "recorded_at"}
        await conn.execute(DefaultOutboxRecorder()._insert, [recorded])

    listed = {p.name: p for p in await parts.list_partitions()}
    assert list(listed)[-1] == "qx_outbox_events_pdefault"
    day0, day1, day2 = (parts.partition_name(old + timedelta(days=d)) for d in range(3))
    assert (listed[day0].pending, listed[day0].lower, listed[day0].upper) == (
        0,
        old,
        old + timedelta(days=1),
    )
    assert (listed[day1].pending, listed[day1].failed, listed[day1].leased) == (1, 1, 0)
    assert (listed[day2].pending, listed[day2].failed, listed[day2].leased) == (1, 0, 1)
    assert listed[parts.partition_name(today)].pending == 1
    assert listed["qx_outbox_events_pdefault"].is_default

    # The store works unchanged on the partitioned table.
    store = OutboxStore(pg)
    stats = await store.stats(exact=True)
    assert (stats.pending, stats.failed, stats.dead, stats.published) == (3, 1, 1, 7)
    dead = (await store.list_rows(OutboxSelection(status="dead"))).rows
    assert len(dead) == 1 and (await store.get(dead[0].id)).value.id == dead[0].id
    assert (await store.replay(OutboxSelection(status="dead"))).rows == 1  # back to pending

    plan = await parts.drop_older_than(timedelta(days=7), dry_run=True)
    assert plan.dropped == [day0] and plan.refused == {day1: 1, day2: 2}
    assert day0 in {p.name for p in await parts.list_partitions()}

    done = await parts.drop_older_than(timedelta(days=7))
    assert done.dropped == [day0] and done.refused == {day1: 1, day2: 2}
    names = {p.name for p in await parts.list_partitions()}
    assert day0 not in names and {day1, day2} <= names
    async with pg.connect() as conn:
        left = (await conn.execute(select(table.c.recorded_at))).scalars().all()
    assert len(left) == 6 and min(left) >= old + timedelta(days=1)

    # Publish what kept day1: now it goes.
    async with pg.begin() as conn:
        await conn.execute(
            table.update()
            .where(table.c.recorded_at < old + timedelta(days=2))
            .values(published_at=now)
        )
    again = await parts.drop_older_than(timedelta(days=7))
    assert again.dropped == [day1] and again.refused == {day2: 2}

    # A row made pending after the listing (a replay, say) is seen by the drop's own
    # re-check inside the detach transaction: it rolls back and the partition stays.
    async with pg.connect() as conn:
        assert await parts._detach_and_drop(conn, day2) == 2
    assert day2 in {p.name for p in await parts.list_partitions()}


async def test_replay_and_purge_batches_across_partitions(pg: AsyncEngine) -> None:
    """Small batches whose rows lie in four partitions each: replay and purge find every
    row of a batch (by id within the batch's recorded_at range) and nothing else."""
    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    now = datetime.now(UTC)
    await OutboxPartitions(pg).create_ahead(3, now=now - timedelta(days=2))
    places = [now - timedelta(days=2), now - timedelta(days=1), now, now - timedelta(days=40)]
    long_ago = now - timedelta(days=30)
    dead = [
        _row(
            places[i % 4] + timedelta(seconds=i),
            dead_at=long_ago + timedelta(seconds=i),
            last_error="ValueError: bad",
        )
        for i in range(40)
    ]
    published = [
        _row(places[i % 4] + timedelta(minutes=i), published_at=long_ago + timedelta(minutes=i))
        for i in range(30)
    ]
    recent = [_row(at, published_at=now) for at in places]
    pending = [_row(at) for at in places]
    async with pg.begin() as conn:
        for rows in (dead, published, recent, pending):
            await conn.execute(insert(table), rows)
    store = OutboxStore(pg, batch_size=3)

    replayed = await store.replay(OutboxSelection(status="dead"))
    assert replayed.rows == 40
    purged = await store.purge(timedelta(days=7))
    assert purged.rows == 30
    async with pg.connect() as conn:
        found = {
            r.id: r
            for r in (
                await conn.execute(
                    select(table.c.id, table.c.dead_at, table.c.published_at, table.c.delivery_id)
                )
            ).all()
        }
    assert set(found) == {r["id"] for r in (*dead, *recent, *pending)}
    for row in dead:
        got = found[row["id"]]
        assert got.dead_at is None and got.delivery_id != row["delivery_id"]
    for row in (*recent, *pending):
        assert found[row["id"]].delivery_id == row["delivery_id"]  # untouched


async def test_a_drop_waits_out_a_transaction_holding_the_table(pg: AsyncEngine) -> None:
    """A writer's open transaction holds a lock the detach needs: the detach times out
    after 100 ms, is retried, and goes through once the writer commits; the writer's own
    statements never wait on it."""
    import asyncio
    import time

    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    parts = OutboxPartitions(pg)
    now = datetime.now(UTC)
    old = now - timedelta(days=10)
    await parts.create_ahead(1, now=old)
    await parts.create_ahead(1, now=now)
    async with pg.begin() as conn:
        await conn.execute(insert(table), [_row(old, published_at=old)])

    holding = asyncio.Event()
    waits: list[float] = []

    async def writer() -> None:
        async with pg.connect() as conn:
            await conn.execute(insert(table), [_row(now)])  # RowExclusiveLock, held
            holding.set()
            for _ in range(10):
                started = time.perf_counter()
                await conn.execute(select(func.count()).select_from(table))
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0.08)
            await conn.commit()

    task = asyncio.create_task(writer())
    await holding.wait()
    report = await parts.drop_older_than(timedelta(days=7), now=now)
    await task
    assert report.dropped == [parts.partition_name(old)] and not report.refused
    assert max(waits) < 0.5  # the writer's reads were never stuck behind the detach


async def test_a_drop_gives_up_cleanly_on_a_table_held_too_long(
    pg: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qxdb.errors import DatabaseUnavailableError
    from qxdb.outbox import partitions

    monkeypatch.setattr(partitions, "_LOCK_RETRIES", 3)
    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    parts = OutboxPartitions(pg)
    now = datetime.now(UTC)
    old = now - timedelta(days=10)
    await parts.create_ahead(1, now=old)
    async with pg.connect() as holder:
        await holder.execute(insert(table), [_row(now)])  # held until the end
        with pytest.raises(DatabaseUnavailableError, match="3 tries of 100 ms each timed out"):
            await parts.drop_older_than(timedelta(days=7), now=now)
        await holder.rollback()
    assert parts.partition_name(old) in {p.name for p in await parts.list_partitions()}


async def test_a_range_already_in_the_default_partition_is_reported_not_fatal(
    pg: AsyncEngine,
) -> None:
    """Cron missed a day: today's rows went to the default partition. create_ahead makes
    every other partition, names today's with its row count, and the rows stay served."""
    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    parts = OutboxPartitions(pg)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await parts.create_ahead(1, now=now - timedelta(days=3))  # and the default one
    async with pg.begin() as conn:
        await conn.execute(insert(table), [_row(now), _row(now + timedelta(seconds=1))])
    report = await parts.create_ahead(3)
    assert report.blocked == {parts.partition_name(today): 2}
    assert report.created == [parts.partition_name(today + timedelta(days=d)) for d in (1, 2)]
    assert report.to_dict() == {
        "created": report.created,
        "blocked": report.blocked,
        "partial": [],
    }
    stats = await OutboxStore(pg).stats()
    assert stats.pending == 2


async def test_partitions_refuse_what_they_cannot_serve(pg: AsyncEngine) -> None:
    plain = outbox_table()
    with pytest.raises(ConfigurationError, match="does not exist"):
        await OutboxPartitions(pg).list_partitions()
    async with pg.begin() as conn:
        await conn.run_sync(plain.metadata.create_all)
    with pytest.raises(ConfigurationError, match="is not partitioned"):
        await OutboxPartitions(pg).create_ahead(1)
    with pytest.raises(ValidationError, match="days must be between 1 and 366"):
        await OutboxPartitions(pg).create_ahead(0)
    with pytest.raises(ValidationError, match="must be positive"):
        await OutboxPartitions(pg).drop_older_than(timedelta(0))
    with pytest.raises(ValidationError, match="unknown partition interval"):
        OutboxPartitions(pg, interval="week")  # type: ignore[arg-type]


async def test_sqlite_has_no_partitions(sqlite_url: str) -> None:
    engine = create_engine(DatabaseSettings(), url=sqlite_url)
    try:
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            OutboxPartitions(engine)
    finally:
        await engine.dispose()


async def test_plain_table_converted_in_a_migration(pg: AsyncEngine) -> None:
    """The documented path: convert_to_partitioned(op.get_bind()) in an Alembic revision."""
    plain = outbox_table()
    old = datetime.now(UTC) - timedelta(days=30)
    rows = [_row(old + timedelta(hours=h), published_at=old) for h in range(4)]
    rows.append(_row(old, last_error="TimeoutError: 3"))  # failed: pending
    async with pg.begin() as conn:
        await conn.run_sync(plain.metadata.create_all)
        await conn.execute(insert(plain), rows)
    store = OutboxStore(pg)
    before = await store.stats(exact=True)

    def upgrade(sync_conn: Any) -> None:
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        op = Operations(MigrationContext.configure(sync_conn))
        assert convert_to_partitioned(op.get_bind()) == "qx_outbox_events_legacy"

    async with pg.begin() as conn:
        await conn.run_sync(upgrade)

    parts = OutboxPartitions(pg)
    listed = await parts.list_partitions()
    assert [(p.name, p.lower is None, p.pending) for p in listed] == [
        ("qx_outbox_events_legacy", True, 1),
        ("qx_outbox_events_pdefault", True, 0),
    ]
    assert (await parts.create_ahead(2)).created == [parts.partition_name(listed[0].upper)]  # type: ignore[arg-type]
    # Oldest first: the legacy partition (from MINVALUE) leads, the default one ends.
    names = [p.name for p in await parts.list_partitions()]
    assert names[0] == "qx_outbox_events_legacy" and names[-1] == "qx_outbox_events_pdefault"
    async with pg.connect() as conn:  # the key named by the convention, as in the models
        key = (
            await conn.execute(
                text(
                    "SELECT conname FROM pg_constraint "
                    "WHERE conrelid = 'qx_outbox_events'::regclass AND contype = 'p'"
                )
            )
        ).scalar_one()
    assert key == "pk_qx_outbox_events"
    after = await store.stats(exact=True)
    assert (after.pending, after.failed, after.published) == (
        before.pending,
        before.failed,
        before.published,
    )
    async with pg.begin() as conn:  # the recorder writes on: today is the legacy's range
        recorded = {k: v for k, v in _row(datetime.now(UTC)).items() if k != "recorded_at"}
        await conn.execute(DefaultOutboxRecorder()._insert, [recorded])
    assert (await store.count(OutboxSelection(status="pending"))) == 2
    later = datetime.now(UTC) + timedelta(days=10)
    kept = await parts.drop_older_than(timedelta(days=7), now=later)
    tomorrow = parts.partition_name(listed[0].upper)  # type: ignore[arg-type]
    assert kept.refused == {"qx_outbox_events_legacy": 2} and kept.dropped == [tomorrow]
    async with pg.begin() as conn:
        await conn.execute(plain.update().values(published_at=datetime.now(UTC)))
    gone = await parts.drop_older_than(timedelta(days=7), now=later)
    assert gone.dropped == ["qx_outbox_events_legacy"]
    assert (await store.stats(exact=True)).total == 0


async def test_converting_a_table_older_than_triage_says_what_to_do_first(
    pg: AsyncEngine,
) -> None:
    plain = outbox_table()
    async with pg.begin() as conn:
        await conn.run_sync(plain.metadata.create_all)
        await conn.execute(text("ALTER TABLE qx_outbox_events DROP COLUMN replay_count"))
    with pytest.raises(ConfigurationError, match="lacks columns replay_count: bring it up"):
        async with pg.begin() as conn:
            await conn.run_sync(lambda c: convert_to_partitioned(c))
    async with pg.connect() as conn:  # nothing was changed
        kind = (
            await conn.execute(
                text("SELECT relkind::text FROM pg_class WHERE relname = 'qx_outbox_events'")
            )
        ).scalar_one()
    assert kind == "r"


async def test_relay_delivers_from_the_partitioned_table(
    postgres_url: str,
    scope: StreamScope,  # noqa: F811 - the fixture imported above
) -> None:
    """The relay, unchanged, on the partitioned table: every row once."""
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=postgres_url)
    table = include_outbox_table(MetaData(), partitioned=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        await OutboxPartitions(engine).create_ahead(2)
        await record(engine, keyed_events(300, 7), chunk=100)
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=scope.prefix)
            counters = await relay.run(once=True)
        assert counters.published == 300
        assert await status_counts(engine) == {"published": 300, "dead": 0, "pending": 0}
        assert_exactly_once(await stream_messages(scope, 300), await delivery_ids(engine))
        listed = await OutboxPartitions(engine).list_partitions()
        assert sum(p.pending for p in listed) == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize("ordered", [False, True])
async def test_relay_batches_across_partitions_mark_and_fail_only_their_rows(
    postgres_url: str, qxdb_nats_url: str, ordered: bool
) -> None:
    """Every claimed batch spans four partitions (three days and the default one): the
    claim, the mark and a failure find their rows by id within the batch's
    ``recorded_at`` range, and touch nothing else. Ordered, the failed event's key waits
    behind it across partitions, and the other keys go on."""
    from nats.js.api import StreamConfig

    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"x{tag}", f"X_{tag.upper()}")
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=postgres_url)
    table = include_outbox_table(MetaData(), partitioned=True)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        await OutboxPartitions(engine).create_ahead(3, now=now - timedelta(days=2))
        places = [now - timedelta(days=2), now - timedelta(days=1), now, now - timedelta(days=40)]
        # Ids grow in this order, so each batch of four takes one row of every place.
        rows = [
            _row(
                places[i % 4] + timedelta(seconds=i), ordering_key=f"k{i % 3}" if ordered else None
            )
            for i in range(40)
        ]
        big = rows[13]
        # Ordered: the rows of the failed event's key after it wait for it.
        held = [r for r in rows[14:] if ordered and r["ordering_key"] == big["ordering_key"]]
        expected = 40 - 1 - len(held)
        big["payload"] = {"blob": "x" * 3_000}
        # Published long ago in the same partitions: never touched again.
        done_at = now - timedelta(hours=1)
        old = [_row(at, published_at=done_at, attempts=1) for at in places]
        async with engine.begin() as conn:
            await conn.execute(insert(table), old)
            await conn.execute(insert(table), rows)
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().add_stream(
                StreamConfig(name=s.stream, subjects=[f"{s.prefix}.>"], max_msg_size=2_048)
            )
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=s.prefix,
                config=RelayConfig(batch_size=4, ordered=ordered),
            )
            counters = await relay.run(once=True)
        # The stream's limit was not read (no ensure_stream): the server refuses the big
        # event, an ordinary failure, retried later.
        assert (counters.published, counters.retried, counters.lease_lost) == (expected, 1, 0)
        async with engine.connect() as conn:
            found = {
                r.id: r
                for r in (
                    await conn.execute(
                        select(
                            table.c.id,
                            table.c.published_at,
                            table.c.dead_at,
                            table.c.attempts,
                            table.c.locked_by,
                            table.c.last_error,
                            table.c.next_attempt_at,
                        )
                    )
                ).all()
            }
        assert len(found) == 44
        for row in old:
            assert (found[row["id"]].published_at, found[row["id"]].attempts) == (done_at, 1)
        failed = found[big["id"]]
        assert failed.published_at is None and failed.dead_at is None
        assert failed.next_attempt_at is not None
        assert "message size exceeds" in (failed.last_error or "")
        for row in rows:
            got = found[row["id"]]
            waiting = row in held
            assert got.locked_by is None and got.attempts == (0 if waiting else 1)
            assert (got.published_at is not None) == (row is not big and not waiting)
        await stream_messages(s, expected)
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            with contextlib.suppress(Exception):
                await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()


async def test_hourly_partitions(pg: AsyncEngine) -> None:
    table = include_outbox_table(MetaData(), partitioned=True)
    async with pg.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    at = datetime(2026, 11, 27, 10, 42, tzinfo=UTC)
    parts = OutboxPartitions(pg, interval="hour")
    made = (await parts.create_ahead(1, now=at)).created
    assert made[0] == "qx_outbox_events_pdefault" and len(made) == 25
    assert made[1] == "qx_outbox_events_p2026112710" and made[-1] == "qx_outbox_events_p2026112809"
    # A day that hourly partitions cover in part is not made (no overlap) and is said
    # to be partial: rows of its other hours would go to the default partition.
    daily = await OutboxPartitions(pg).create_ahead(1, now=at + timedelta(hours=14))
    assert daily.created == [] and daily.partial == ["qx_outbox_events_p20261128"]
    # A day the hourly ones cover whole is simply there; a day nobody covers is made.
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    assert len((await parts.create_ahead(1, now=midnight)).created) == 24
    whole = await OutboxPartitions(pg).create_ahead(2, now=midnight)
    assert whole.partial == [] and whole.created == ["qx_outbox_events_p20261126"]
