"""Three real `qxdb outbox relay --ordered` processes on one outbox: every event once, and
per ordering key the stream holds the events in recorded order."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.integration.test_relay import (
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

QXDB = str(Path(sys.executable).with_name("qxdb"))


def relay_command(url: str, s: StreamScope, *extra: str) -> list[str]:
    return [
        QXDB,
        "--database-url",
        url,
        "outbox",
        "relay",
        "--nats-url",
        s.url,
        "--subject-prefix",
        s.prefix,
        "--stream",
        s.stream,
        "--no-create-stream",
        *extra,
    ]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    env["NO_COLOR"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.postgres_only
async def test_three_ordered_relays_keep_per_key_order(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(20_000, 200))
        args = relay_command(
            postgres_url,
            scope,
            "--ordered",
            "--once",
            "--json",
            # The default poll interval (2 s): a finished batch wakes the relay, not a poll.
            # Fewer rows per claim than there are keys: the relays share every round.
            "--batch-size",
            "50",
        )
        procs = [
            await asyncio.create_subprocess_exec(
                *args,
                "--worker-id",
                f"relay-{n}",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=clean_env(),
            )
            for n in range(3)
        ]
        published = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, err.decode()
            published.append(int(json.loads(out)["published"]))
        assert sum(published) == 20_000
        # Process start-up on a loaded machine can leave one relay late; two must overlap.
        assert sum(p > 0 for p in published) >= 2, f"the relays did not share: {published}"
        assert await status_counts(engine) == {"published": 20_000, "dead": 0, "pending": 0}
        messages = await stream_messages(scope, 20_000)
        ids = await delivery_ids(engine)
        assert_exactly_once(messages, ids)
        assert_per_key_order(messages, ids)
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_a_failing_head_holds_back_only_its_own_key(
    postgres_url: str, scope: StreamScope
) -> None:
    from qxdb.engine import make_session_factory
    from qxdb.ids import uuid7
    from qxdb.outbox.publishers import NatsJetStreamPublisher
    from qxdb.outbox.relay import OutboxRelay, RelayConfig
    from tests.integration.test_relay import (
        TABLE,
        FailingFor,
        InvoiceSent,
        OrderPlaced,
        fast_forward,
        record,
    )

    engine = await make_outbox(postgres_url)
    try:
        a, b = uuid7(), uuid7()
        await record(
            engine,
            [
                InvoiceSent(aggregate_id=a, seq=0),  # the head of key a; its publishes fail
                OrderPlaced(aggregate_id=a, seq=1),
                OrderPlaced(aggregate_id=a, seq=2),
                *(OrderPlaced(aggregate_id=b, seq=i) for i in range(3)),
                *(OrderPlaced(seq=i) for i in range(5)),  # no ordering key
            ],
        )
        slow = RelayConfig(ordered=True, max_attempts=2, backoff_base_seconds=30)
        fast = RelayConfig(ordered=True, max_attempts=2, backoff_base_seconds=0.05)
        async with NatsJetStreamPublisher(scope.url) as pub:
            faulty = FailingFor(pub, f"{scope.prefix}.billing.invoice_sent")
            factory = make_session_factory(engine)
            first = await OutboxRelay(
                factory, faulty, subject_prefix=scope.prefix, config=slow
            ).run(once=True)
            # Key b and the unkeyed rows flowed; key a waits behind its failing head.
            assert (first.published, first.retried, first.dead) == (8, 1, 0)
            async with engine.connect() as conn:
                waiting = (
                    await conn.execute(
                        select(TABLE.c.published_at).where(
                            TABLE.c.ordering_key == str(a), TABLE.c.event_name == "orders.placed"
                        )
                    )
                ).scalars()
                assert list(waiting) == [None, None]
            await fast_forward(engine)
            second = await OutboxRelay(
                factory, faulty, subject_prefix=scope.prefix, config=fast
            ).run(once=True)
        # Once the head is dead, the key is released and its later rows go, in order.
        assert (second.published, second.dead) == (2, 1)
        messages = await stream_messages(scope, 10)
        ids = await delivery_ids(engine)
        assert_per_key_order(messages, ids)
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_per_key_order_follows_commit_order_whatever_the_writers_clocks_say(
    postgres_url: str, scope: StreamScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers take turns on the same aggregates, each commit after the previous one
    (what a version check enforces); one writer's clock is 100 ms behind. Its events were
    out of version order when row ids came from the writers' clocks."""
    import uuid as uuid_module

    from qxdb.engine import make_session_factory
    from qxdb.ids import uuid7
    from qxdb.outbox import DefaultOutboxRecorder, recorder as recorder_module
    from qxdb.outbox.publishers import NatsJetStreamPublisher
    from qxdb.outbox.relay import OutboxRelay, RelayConfig
    from tests.integration.test_relay import TABLE, OrderPlaced

    def late_uuid7() -> uuid_module.UUID:
        # The writer's clock, 100 ms behind: the top 48 bits are milliseconds.
        return uuid_module.UUID(int=uuid7().int - (100 << 80))

    engine = await make_outbox(postgres_url)
    factory = make_session_factory(engine)
    recorder = DefaultOutboxRecorder(TABLE)
    keys = [uuid7() for _ in range(10)]
    try:
        for seq in range(100):
            with monkeypatch.context() as m:
                if seq % 2:
                    m.setattr(recorder_module, "uuid7", late_uuid7)
                async with factory() as session, session.begin():
                    event = OrderPlaced(aggregate_id=keys[(seq // 2) % 10], seq=seq)
                    await recorder.record(session, [event])
        async with NatsJetStreamPublisher(scope.url) as pub:
            relay = OutboxRelay(
                factory, pub, subject_prefix=scope.prefix, config=RelayConfig(ordered=True)
            )
            assert (await relay.run(once=True)).published == 100
        async with engine.connect() as conn:
            seq_of = {
                str(d): int(s)
                for d, s in (
                    await conn.execute(
                        select(TABLE.c.delivery_id, TABLE.c.payload["payload"]["seq"].as_string())
                    )
                ).all()
            }
            key_of = dict(
                (await conn.execute(select(TABLE.c.delivery_id, TABLE.c.ordering_key))).all()
            )
        per_key: dict[str, list[int]] = {}
        for msg_id, _subject, _stream_seq in await stream_messages(scope, 100):
            per_key.setdefault(key_of[uuid_module.UUID(msg_id)], []).append(seq_of[msg_id])
        for key, seqs in per_key.items():
            assert seqs == sorted(seqs), f"key {key} out of commit order: {seqs}"
    finally:
        await engine.dispose()
