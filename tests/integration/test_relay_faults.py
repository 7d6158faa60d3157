"""The relay under faults, against real NATS servers: a poison event near max_payload,
a relay frozen past its lease and the stream's duplicate window, a re-publish counted as
a duplicate, a mark whose connection is killed, and ordered mode never waiting a poll
interval while work is known."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text, update

from qxdb.engine import make_session_factory
from qxdb.errors import BrokerUnavailableError
from qxdb.ids import uuid7
from qxdb.outbox import outbox_row
from qxdb.outbox.publishers import (
    MSG_ID_HEADER,
    NatsJetStreamPublisher,
    OutboundMessage,
    PublishOutcome,
    ack_outcome,
    message_size,
)
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from tests.integration.own_nats import own_nats
from tests.integration.test_relay import (
    TABLE,
    OrderPlaced,
    StreamScope,
    assert_exactly_once,
    assert_per_key_order,
    delivery_ids,
    keyed_events,
    make_outbox,
    scope,
    seed,
    status_counts,
    stream_messages,
)

__all__ = ["scope"]


def test_acks_are_parsed_not_grepped() -> None:
    # nats-server writes a space before true; the old substring test never matched it.
    assert ack_outcome(b'{"stream":"S", "seq":1,"duplicate": true}').duplicate
    assert ack_outcome(b'{"stream":"S","seq":7,"duplicate":true}').duplicate
    plain = ack_outcome(b'{"stream":"S","seq":2}')
    assert plain.ok and not plain.duplicate
    # A stream named "duplicate" is not a duplicate ack.
    assert not ack_outcome(b'{"stream":"duplicate","seq":3}').duplicate
    failed = ack_outcome(b'{"error":{"code":503,"description":"stream offline"}}')
    assert not failed.ok and failed.error == "JetStream error 503: stream offline"
    assert not ack_outcome(b"garbage").ok


def blob_row(key: uuid.UUID, size: int) -> dict[str, Any]:
    """An outbox row whose payload text (``{"blob": "xx…"}``) is ``size`` bytes long."""
    row = outbox_row(OrderPlaced(aggregate_id=key))
    row["payload"] = {"blob": "x" * (size - len('{"blob": ""}'))}
    return row


@pytest.mark.postgres_only
async def test_a_poison_event_near_max_payload_dies_at_once_and_its_neighbours_are_delivered(
    postgres_url: str, tmp_path: Path
) -> None:
    limit = 65_536
    with own_nats(tmp_path, max_payload=limit) as server:
        tag = uuid.uuid4().hex[:8]
        s = StreamScope(server.url, f"p{tag}", f"P_{tag.upper()}")
        subject = f"{s.prefix}.orders.placed"
        # What the relay adds around a payload: the subject and a Nats-Msg-Id header.
        overhead = message_size(subject, b"", {MSG_ID_HEADER: str(uuid.uuid4())})
        a, b = uuid7(), uuid7()
        # The case: the payload alone passes nats-py's check (65,516 < 65,536),
        # the headers push the message over the server's limit.
        poison = blob_row(a, limit - 20)
        rows = [
            poison,
            *(blob_row(a, 50) for _ in range(5)),  # behind the poison, same key
            blob_row(b, limit - overhead),  # exactly at the limit: must go through
            *(outbox_row(e) for e in keyed_events(20, 4)),
        ]
        engine = await make_outbox(postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(TABLE), rows)
            async with NatsJetStreamPublisher(server.url) as pub:
                await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
                # Before: one such message made the server close the client for good, and
                # the relay looped on a dead client. Do that to the relay's client first.
                await pub.connection.publish(
                    subject, b"x" * (limit - 20), headers={MSG_ID_HEADER: "x" * 60}
                )
                for _ in range(100):
                    if pub.connection.is_closed:
                        break
                    await asyncio.sleep(0.05)
                assert pub.connection.is_closed
                relay = OutboxRelay(
                    make_session_factory(engine),
                    pub,
                    subject_prefix=s.prefix,
                    config=RelayConfig(ordered=True, max_attempts=3),
                )
                counters = await asyncio.wait_for(relay.run(once=True), 60)
            assert (counters.published, counters.dead, counters.retried) == (26, 1, 0)
            async with engine.connect() as conn:
                dead = (
                    await conn.execute(
                        select(TABLE.c.attempts, TABLE.c.last_error, TABLE.c.dead_at).where(
                            TABLE.c.id == poison["id"]
                        )
                    )
                ).one()
            assert dead.attempts == 1 and dead.dead_at is not None
            assert "exceeds the NATS server's max_payload of 65,536 bytes" in dead.last_error
            messages = await stream_messages(s, 26)
            ids = await delivery_ids(engine)
            assert_exactly_once(messages, {k: v for k, v in ids.items() if v[1] != poison["id"]})
            assert_per_key_order(messages, ids)
        finally:
            await engine.dispose()


class Frozen:
    """The real publisher behind a relay that freezes after claiming (a GC pause, a
    SIGSTOP, a starved VM) until the test lets it go on."""

    def __init__(self, inner: NatsJetStreamPublisher) -> None:
        self.inner = inner
        self.claimed = asyncio.Event()
        self.thaw = asyncio.Event()

    async def publish_batch(self, messages: list[OutboundMessage]) -> list[PublishOutcome]:
        self.claimed.set()
        await self.thaw.wait()
        return await self.inner.publish_batch(messages)


@pytest.mark.postgres_only
async def test_a_relay_frozen_past_its_lease_and_the_window_publishes_nothing_twice(
    postgres_url: str, qxdb_nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"f{tag}", f"F_{tag.upper()}")
    engine = await make_outbox(postgres_url)
    factory = make_session_factory(engine)
    config = RelayConfig(lease_seconds=1.0)
    try:
        await seed(engine, keyed_events(50, 50))
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            # A one-second duplicate window: a copy that comes later is stored again.
            await pub.ensure_stream(s.stream, s.prefix, duplicate_window=1)
            frozen = Frozen(pub)
            stalled = OutboxRelay(factory, frozen, subject_prefix=s.prefix, config=config)
            first = asyncio.create_task(stalled.run(once=True))
            await asyncio.wait_for(frozen.claimed.wait(), 30)
            await asyncio.sleep(1.3)  # its lease is over: the rows are up for grabs
            other = OutboxRelay(factory, pub, subject_prefix=s.prefix, config=config)
            assert (await other.run(once=True)).published == 50
            await asyncio.sleep(1.5)  # and the stream's duplicate window is over too
            frozen.thaw.set()
            counters = await asyncio.wait_for(first, 30)
        assert (counters.published, counters.fenced) == (0, 50)
        assert "lease ran out before they were sent" in caplog.text
        assert "de-duplicated by the stream" not in caplog.text
        messages = await stream_messages(s, 50)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()


@pytest.mark.postgres_only
async def test_a_republished_event_is_counted_as_a_duplicate(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    factory = make_session_factory(engine)
    try:
        await seed(engine, keyed_events(30, 30))
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(factory, pub, subject_prefix=scope.prefix)
            assert (await relay.run(once=True)).duplicates == 0
            # As if the marks had been lost: pending again, same delivery ids.
            async with engine.begin() as conn:
                await conn.execute(update(TABLE).values(published_at=None))
            again = await OutboxRelay(factory, pub, subject_prefix=scope.prefix).run(once=True)
        assert (again.published, again.duplicates) == (30, 30)
        await stream_messages(scope, 30)
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_a_mark_whose_connection_is_killed_is_retried_on_a_fresh_one(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    killed: list[str] = []

    def kill_the_mark(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The backend dies just as the first mark arrives (a restart, an admin's kill).
        if (
            not killed
            and statement.lstrip().startswith("UPDATE")
            and "published_at=" in (statement.replace(" ", ""))
        ):
            killed.append(statement)
            with pytest.raises(Exception, match="terminat"):
                conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        await seed(engine, keyed_events(200, 20))
        event.listen(engine.sync_engine, "before_cursor_execute", kill_the_mark)
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=scope.prefix,
                config=RelayConfig(batch_size=50),
            )
            counters = await asyncio.wait_for(relay.run(once=True), 60)
        assert killed, "the mark was never killed"
        assert counters.published == 200
        assert await status_counts(engine) == {"published": 200, "dead": 0, "pending": 0}
        async with engine.connect() as conn:
            held = (
                await conn.execute(
                    text("SELECT count(*) FROM qx_outbox_events WHERE locked_by IS NOT NULL")
                )
            ).scalar_one()
        assert held == 0
        messages = await stream_messages(scope, 200)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", kill_the_mark)
        await engine.dispose()


@pytest.mark.postgres_only
async def test_ordered_relay_runs_on_batch_completion_not_on_the_poll_interval(
    postgres_url: str, scope: StreamScope
) -> None:
    """1,500 events over 30 keys: 50 rounds of one head per key. The poll interval is an
    hour, so a relay that ever slept it while work was known would never finish."""
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(1_500, 30))
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=scope.prefix,
                config=RelayConfig(ordered=True, poll_interval_seconds=3600),
            )
            runner = asyncio.create_task(relay.run())
            try:
                for _ in range(1200):
                    if (await status_counts(engine))["published"] == 1_500:
                        break
                    await asyncio.sleep(0.05)
            finally:
                relay.stop()
                counters = await runner
        assert counters.published == 1_500
        messages = await stream_messages(scope, 1_500)
        ids = await delivery_ids(engine)
        assert_exactly_once(messages, ids)
        assert_per_key_order(messages, ids)
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.slow
async def test_batches_in_flight_when_the_broker_dies_are_not_charged(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(10_000, 100))
        with own_nats(tmp_path) as server:
            tag = uuid.uuid4().hex[:8]
            s = StreamScope(server.url, f"k{tag}", f"K_{tag.upper()}")
            async with NatsJetStreamPublisher(server.url) as pub:
                await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
                relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=s.prefix)
                runner = asyncio.create_task(relay.run())
                try:
                    for _ in range(600):
                        if (await status_counts(engine))["published"] >= 1_000:
                            break
                        await asyncio.sleep(0.05)
                    server.stop()  # SIGKILL, batches in flight
                    await asyncio.sleep(1)
                    server.start()
                    for _ in range(1200):
                        if (await status_counts(engine))["published"] == 10_000:
                            break
                        await asyncio.sleep(0.05)
                finally:
                    relay.stop()
                    counters = await runner
            assert (counters.retried, counters.dead) == (0, 0)
            assert "relay: broker unavailable" in caplog.text
            assert "relay: broker back after" in caplog.text
            async with engine.connect() as conn:
                charged = (
                    await conn.exec_driver_sql(
                        "SELECT count(*) FROM qx_outbox_events "
                        "WHERE attempts <> 1 OR last_error IS NOT NULL"
                    )
                ).scalar_one()
            # Published once each, and no event paid an attempt for the broker's death.
            assert charged == 0
            assert await status_counts(engine) == {"published": 10_000, "dead": 0, "pending": 0}
            messages = await stream_messages(s, 10_000)
            assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_once_stops_with_broker_unavailable_when_the_broker_dies(
    postgres_url: str, tmp_path: Path
) -> None:
    """What `--once` turns into exit 3: the run ends (it does not wait for the broker),
    the batches in flight are released uncharged and no lease is left behind."""
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(10_000, 100))
        with own_nats(tmp_path) as server:
            tag = uuid.uuid4().hex[:8]
            s = StreamScope(server.url, f"b{tag}", f"B_{tag.upper()}")
            async with NatsJetStreamPublisher(server.url) as pub:
                await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
                relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=s.prefix)
                runner = asyncio.create_task(relay.run(once=True))
                for _ in range(600):
                    if (await status_counts(engine))["published"] >= 1_000:
                        break
                    await asyncio.sleep(0.05)
                server.stop()
                with pytest.raises(BrokerUnavailableError, match="the broker is unavailable"):
                    await asyncio.wait_for(runner, 60)
        async with engine.connect() as conn:
            left = (
                await conn.exec_driver_sql(
                    "SELECT count(*) FILTER (WHERE locked_by IS NOT NULL), "
                    "count(*) FILTER (WHERE last_error IS NOT NULL OR attempts > 1) "
                    "FROM qx_outbox_events"
                )
            ).one()
        assert tuple(left) == (0, 0)
        assert (await status_counts(engine))["pending"] > 0
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_an_event_over_the_streams_max_msg_size_dies_at_once(
    postgres_url: str, qxdb_nats_url: str
) -> None:
    from nats.js.api import StreamConfig

    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"m{tag}", f"M_{tag.upper()}")
    engine = await make_outbox(postgres_url)
    try:
        big = blob_row(uuid7(), 4_000)
        async with engine.begin() as conn:
            await conn.execute(insert(TABLE), [big, *(outbox_row(e) for e in keyed_events(5, 5))])
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().add_stream(
                StreamConfig(name=s.stream, subjects=[f"{s.prefix}.>"], max_msg_size=2_048)
            )
            # An existing stream is used as it is; its limits are read.
            limits = await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
            assert limits.max_msg_size == 2_048
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=s.prefix)
            counters = await relay.run(once=True)
        assert (counters.published, counters.dead, counters.retried) == (5, 1, 0)
        async with engine.connect() as conn:
            error = (
                await conn.execute(select(TABLE.c.last_error).where(TABLE.c.id == big["id"]))
            ).scalar_one()
        assert "exceeds the stream's max_msg_size of 2,048 bytes" in error
        await stream_messages(s, 5)
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            with contextlib.suppress(Exception):
                await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()
