"""The outbox relay against a real NATS JetStream: exactly once in the stream, failing
events back off and die without stalling the others, replay, and the SQLite worker.

Helpers here are shared by the other ``test_relay_*`` modules.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.domain import IntegrationEvent
from qxdb.engine import create_engine, make_session_factory
from qxdb.ids import uuid7
from qxdb.outbox import DefaultOutboxRecorder, outbox_row, outbox_table
from qxdb.outbox.publishers import (
    NatsJetStreamPublisher,
    OutboundMessage,
    PublishOutcome,
)
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.settings import DatabaseSettings

TABLE = outbox_table()


class OrderPlaced(IntegrationEvent):
    event_name: ClassVar[str] = "orders.placed"
    seq: int = 0


class InvoiceSent(IntegrationEvent):
    event_name: ClassVar[str] = "billing.invoice sent"
    seq: int = 0


@dataclass
class StreamScope:
    """A private stream and subject prefix for one test (deleted afterwards)."""

    url: str
    prefix: str
    stream: str


@pytest.fixture
async def scope(qxdb_nats_url: str) -> AsyncIterator[StreamScope]:
    tag = uuid.uuid4().hex[:12]
    found = StreamScope(qxdb_nats_url, f"t{tag}", f"T_{tag.upper()}")
    async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
        await pub.ensure_stream(found.stream, found.prefix, duplicate_window=120)
    try:
        yield found
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().delete_stream(found.stream)


async def make_outbox(url: str) -> AsyncEngine:
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    async with engine.begin() as conn:
        await conn.run_sync(TABLE.metadata.create_all)
    return engine


async def record(
    engine: AsyncEngine, events: Sequence[IntegrationEvent], *, chunk: int = 1000
) -> None:
    """Record through the real recorder, ``chunk`` events per transaction."""
    factory = make_session_factory(engine)
    recorder = DefaultOutboxRecorder(TABLE)
    for start in range(0, len(events), chunk):
        async with factory() as session, session.begin():
            await recorder.record(session, events[start : start + chunk])


async def seed(engine: AsyncEngine, events: Sequence[IntegrationEvent]) -> None:
    """Bulk-load outbox rows (the recorder's rows, executemany) in one transaction."""
    async with engine.begin() as conn:
        await conn.execute(insert(TABLE), [outbox_row(e) for e in events])
    if engine.dialect.name == "postgresql":
        # A live outbox has planner statistics (autovacuum); a table filled a second ago
        # has none, and the ordered claim's skip scan needs them to pick its index.
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))


def keyed_events(count: int, keys: int) -> list[IntegrationEvent]:
    aggregates = [uuid7() for _ in range(keys)]
    return [OrderPlaced(aggregate_id=aggregates[i % keys], seq=i) for i in range(count)]


async def stream_messages(scope: StreamScope, expected: int) -> list[tuple[str, str, int]]:
    """Every message of the stream in stream order: (Nats-Msg-Id, subject, seq).

    Reads ``expected`` messages and then makes sure nothing more is stored.
    """
    async with NatsJetStreamPublisher(scope.url) as pub:
        js = pub.connection.jetstream()
        info = await js.stream_info(scope.stream)
        total = info.state.messages
        found: list[tuple[str, str, int]] = []
        complete = asyncio.Event()

        async def collect(msg: Any) -> None:
            found.append((msg.headers["Nats-Msg-Id"], msg.subject, msg.metadata.sequence.stream))
            if len(found) >= total:
                complete.set()

        if total:
            sub = await js.subscribe(
                f"{scope.prefix}.>", stream=scope.stream, cb=collect, ordered_consumer=True
            )
            await asyncio.wait_for(complete.wait(), 60)
            await sub.unsubscribe()
    assert total == expected, f"stream holds {total} messages, expected {expected}"
    return found


async def delivery_ids(engine: AsyncEngine) -> dict[str, tuple[str | None, uuid.UUID]]:
    """delivery id -> (ordering key, row id) of every outbox row."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(TABLE.c.delivery_id, TABLE.c.ordering_key, TABLE.c.id))
        ).all()
    return {str(d): (k, i) for d, k, i in rows}


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    t = TABLE
    async with engine.connect() as conn:
        published = (
            await conn.execute(select(func.count()).where(t.c.published_at.is_not(None)))
        ).scalar_one()
        dead = (
            await conn.execute(select(func.count()).where(t.c.dead_at.is_not(None)))
        ).scalar_one()
        pending = (
            await conn.execute(
                select(func.count()).where(t.c.published_at.is_(None), t.c.dead_at.is_(None))
            )
        ).scalar_one()
    return {"published": published, "dead": dead, "pending": pending}


async def fast_forward(engine: AsyncEngine) -> None:
    """Let time pass for backoffs: every scheduled retry is due now."""
    async with engine.begin() as conn:
        await conn.execute(
            update(TABLE).where(TABLE.c.next_attempt_at.is_not(None)).values(next_attempt_at=None)
        )


def assert_exactly_once(messages: list[tuple[str, str, int]], ids: dict[str, Any]) -> None:
    seen = [m[0] for m in messages]
    assert len(seen) == len(set(seen)), "a message id is stored twice"
    assert set(seen) == set(ids), "stream and outbox disagree on the delivered ids"


# ---------------------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.postgres_only
async def test_twenty_thousand_events_are_in_the_stream_exactly_once(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(20_000, 500))
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=scope.prefix)
            counters = await relay.run(once=True)
        assert counters.published == 20_000
        assert counters.duplicates == 0
        assert await status_counts(engine) == {"published": 20_000, "dead": 0, "pending": 0}
        messages = await stream_messages(scope, 20_000)
        assert_exactly_once(messages, await delivery_ids(engine))
        assert {m[1] for m in messages} == {f"{scope.prefix}.orders.placed"}
    finally:
        await engine.dispose()


class FailingFor:
    """A real NATS publisher with a fault for one event subject (until healed)."""

    def __init__(self, inner: NatsJetStreamPublisher, subject: str) -> None:
        self.inner = inner
        self.subject = subject
        self.broken = True
        self.refused = 0

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]:
        if not self.broken:
            return await self.inner.publish_batch(messages)
        good = [m for m in messages if m.subject != self.subject]
        sent = iter(await self.inner.publish_batch(good))
        outcomes = []
        for m in messages:
            if m.subject == self.subject:
                self.refused += 1
                outcomes.append(PublishOutcome.failed("injected fault: invoices are down"))
            else:
                outcomes.append(next(sent))
        return outcomes


@pytest.mark.postgres_only
async def test_a_failing_event_type_backs_off_dies_and_replays_without_stalling_others(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        invoices = [InvoiceSent(aggregate_id=uuid7(), seq=i) for i in range(20)]
        orders = [OrderPlaced(aggregate_id=uuid7(), seq=i) for i in range(300)]
        mixed: list[IntegrationEvent] = []
        for i in range(300):
            mixed.append(orders[i])
            if i % 15 == 0:
                mixed.append(invoices[i // 15])
        await record(engine, mixed, chunk=50)
        # A long first backoff, so the state "backing off" holds still while we look.
        slow = RelayConfig(batch_size=40, max_attempts=3, backoff_base_seconds=30)
        fast = RelayConfig(batch_size=40, max_attempts=3, backoff_base_seconds=0.05)
        invoice = TABLE.c.event_name == "billing.invoice sent"
        async with NatsJetStreamPublisher(scope.url) as pub:
            faulty = FailingFor(pub, f"{scope.prefix}.billing.invoice_sent")
            factory = make_session_factory(engine)
            # --once drains what is deliverable: every order, and one try per invoice.
            first = await OutboxRelay(
                factory, faulty, subject_prefix=scope.prefix, config=slow
            ).run(once=True)
            assert (first.published, first.retried, first.dead) == (300, 20, 0)
            async with engine.connect() as conn:
                backing_off = (
                    await conn.execute(
                        select(
                            TABLE.c.attempts,
                            TABLE.c.next_attempt_at - func.now(),
                            TABLE.c.last_error,
                            TABLE.c.dead_at,
                            TABLE.c.locked_by,
                            TABLE.c.first_failed_at,
                        ).where(invoice)
                    )
                ).all()
            assert len(backing_off) == 20
            for attempts, wait, error, dead_at, locked_by, first_failed in backing_off:
                # First backoff is 30 s with jitter over its upper half: 15 to 30 s.
                assert attempts == 1 and 14 < wait.total_seconds() <= 30
                assert "injected fault" in error and dead_at is None and locked_by is None
                assert first_failed is not None  # the relay marks the first failure

            # Time passes (the retries come due); the next two attempts fail too.
            for _ in range(2):
                await fast_forward(engine)
                await OutboxRelay(factory, faulty, subject_prefix=scope.prefix, config=fast).run(
                    once=True
                )
            assert await status_counts(engine) == {"published": 300, "dead": 20, "pending": 0}
            async with engine.connect() as conn:
                attempts = (await conn.execute(select(TABLE.c.attempts).where(invoice))).scalars()
                assert set(attempts) == {3}
                # Later failures keep the first one's time (triage tells "failing since").
                kept = await conn.execute(
                    select(func.count()).where(invoice, TABLE.c.first_failed_at < TABLE.c.dead_at)
                )
                assert kept.scalar_one() == 20

            # Replay through the outbox store (what `qxdb outbox replay` runs): fresh
            # delivery ids, attempts reset. Then the fault goes away.
            replayed = await OutboxStore(engine, TABLE).replay(OutboxSelection(status="dead"))
            assert replayed.rows == 20
            faulty.broken = False
            replay = OutboxRelay(factory, faulty, subject_prefix=scope.prefix, config=fast)
            again = await replay.run(once=True)
        assert again.published == 20
        assert await status_counts(engine) == {"published": 320, "dead": 0, "pending": 0}
        messages = await stream_messages(scope, 320)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        await engine.dispose()


async def test_sqlite_single_worker_relays_everything_once(
    sqlite_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(sqlite_url)
    try:
        await record(engine, keyed_events(1_000, 10), chunk=100)
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=scope.prefix,
                config=RelayConfig(batch_size=100, ordered=True),
            )
            counters = await relay.run(once=True)
        assert counters.published == 1_000
        assert await status_counts(engine) == {"published": 1_000, "dead": 0, "pending": 0}
        messages = await stream_messages(scope, 1_000)
        ids = await delivery_ids(engine)
        assert_exactly_once(messages, ids)
        assert_per_key_order(messages, ids)
    finally:
        await engine.dispose()


def assert_per_key_order(
    messages: list[tuple[str, str, int]], ids: dict[str, tuple[str | None, uuid.UUID]]
) -> None:
    """For every ordering key, stream order equals recording (row id) order."""
    by_key: dict[str | None, list[uuid.UUID]] = {}
    for msg_id, _subject, _seq in messages:
        key, row_id = ids[msg_id]
        by_key.setdefault(key, []).append(row_id)
    for key, row_ids in by_key.items():
        assert row_ids == sorted(row_ids), f"key {key} out of order in the stream"


@pytest.mark.postgres_only
async def test_notify_wakes_the_relay_and_a_late_commit_with_a_smaller_id_is_not_skipped(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    factory = make_session_factory(engine)
    recorder = DefaultOutboxRecorder(TABLE)
    try:
        async with NatsJetStreamPublisher(scope.url) as pub:
            # Polling once a minute: anything delivered sooner was woken by NOTIFY.
            relay = OutboxRelay(
                factory,
                pub,
                subject_prefix=scope.prefix,
                config=RelayConfig(poll_interval_seconds=60),
            )
            runner = asyncio.create_task(relay.run())
            await asyncio.sleep(0.3)

            async def published() -> int:
                return (await status_counts(engine))["published"]

            async def until(count: int) -> None:
                for _ in range(200):
                    if await published() >= count:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"only {await published()} of {count} delivered")

            slow = factory()
            await slow.begin()
            # The slow writer takes the smaller id, then commits last.
            await recorder.record(slow, [OrderPlaced(aggregate_id=uuid7(), seq=0)])
            await record(engine, [OrderPlaced(aggregate_id=uuid7(), seq=1)])
            await until(1)
            await slow.commit()
            await slow.close()
            await until(2)
            # The listening connection is killed: the relay opens a new one and still
            # wakes on the next commit.
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
            await asyncio.sleep(0.5)
            await record(engine, [OrderPlaced(aggregate_id=uuid7(), seq=2)])
            await until(3)
            relay.stop()
            counters = await runner
        assert counters.published == 3
        messages = await stream_messages(scope, 3)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        await engine.dispose()
