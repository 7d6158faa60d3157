"""Outbox relay throughput and latency against a real NATS JetStream.

1. events/s of ``OutboxRelay`` (one worker) relaying 50,000 events, next to a minimal
   hand-written asyncpg + nats-py loop doing the same claim (500, SKIP LOCKED, lease) ->
   publish concurrently with ``Nats-Msg-Id`` -> mark published work, on the same data.
2. latency from the writer's commit to the stream's ack, with the relay woken by NOTIFY:
   events committed one per transaction at about 100/s; median and p99.

Run: ``python benchmarks/relay.py`` (QXDB_BENCH_DATABASE_URL, QXDB_BENCH_NATS_URL).
Targets: >= 10,000 events/s, >= 1.1x the hand-written loop, p50 latency < 20 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Sequence

import asyncpg
import nats
from sqlalchemy import insert, text

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
from qxdb.settings import DatabaseSettings

EVENTS = 50_000
BATCH = 500
LATENCY_EVENTS = 300
DB_URL = os.environ.get(
    "QXDB_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_relay"
)
NATS_URL = os.environ.get("QXDB_BENCH_NATS_URL", "nats://127.0.0.1:4222")
TABLE = outbox_table()


class OrderPlaced(IntegrationEvent):
    event_name = "orders.placed"
    seq: int = 0


def raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def recreate_database() -> None:
    base, _, name = raw_dsn(DB_URL).rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def fresh_outbox(engine: object) -> None:
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.run_sync(TABLE.metadata.drop_all)
        await conn.run_sync(TABLE.metadata.create_all)
        aggregates = [uuid7() for _ in range(1000)]
        rows = [
            outbox_row(OrderPlaced(aggregate_id=aggregates[i % 1000], seq=i)) for i in range(EVENTS)
        ]
        await conn.execute(insert(TABLE), rows)
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("ANALYZE"))


async def with_stream(prefix: str, stream: str) -> None:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        js = pub.connection.jetstream()
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await pub.ensure_stream(stream, prefix, duplicate_window=120)


async def drop_stream(stream: str) -> int:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        js = pub.connection.jetstream()
        count = (await js.stream_info(stream)).state.messages
        await js.delete_stream(stream)
    return int(count)


async def hand_written_loop(prefix: str) -> float:
    """The loop a careful engineer writes by hand: claim, gather publishes, mark."""
    conn = await asyncpg.connect(raw_dsn(DB_URL))
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    claim = """
        UPDATE qx_outbox_events SET locked_until = now() + interval '30 seconds', locked_by = 'hand'
        WHERE id IN (
            SELECT id FROM qx_outbox_events
            WHERE published_at IS NULL AND dead_at IS NULL
              AND (next_attempt_at IS NULL OR next_attempt_at <= now())
              AND (locked_until IS NULL OR locked_until < now())
            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, event_name, payload::text, delivery_id"""
    mark = """UPDATE qx_outbox_events SET published_at = now(), attempts = attempts + 1,
        locked_until = NULL, locked_by = NULL WHERE id = ANY($1::uuid[]) AND locked_by = 'hand'"""
    start = time.perf_counter()
    total = 0
    try:
        while True:
            rows = await conn.fetch(claim, BATCH)
            if not rows:
                break
            await asyncio.gather(
                *(
                    js.publish(
                        f"{prefix}.{r['event_name']}",
                        r["payload"].encode(),
                        headers={"Nats-Msg-Id": str(r["delivery_id"])},
                    )
                    for r in rows
                )
            )
            await conn.execute(mark, [r["id"] for r in rows])
            total += len(rows)
    finally:
        await conn.close()
        await nc.close()
    assert total == EVENTS, total
    return EVENTS / (time.perf_counter() - start)


async def qxdb_relay(engine: object, prefix: str) -> float:
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        relay = OutboxRelay(
            make_session_factory(engine),  # type: ignore[arg-type]
            pub,
            subject_prefix=prefix,
            config=RelayConfig(batch_size=BATCH),
        )
        start = time.perf_counter()
        counters = await relay.run(once=True)
        elapsed = time.perf_counter() - start
    assert counters.published == EVENTS, counters
    return EVENTS / elapsed


class AckClock:
    """Wraps the real publisher and notes when each message's ack came back."""

    def __init__(self, inner: NatsJetStreamPublisher) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]:
        outcomes = await self.inner.publish_batch(messages)
        now = time.perf_counter()
        for m in messages:
            self.acked[m.msg_id] = now
        return outcomes


async def latency(engine: object, prefix: str) -> tuple[float, float]:
    factory = make_session_factory(engine)  # type: ignore[arg-type]
    recorder = DefaultOutboxRecorder(TABLE)
    committed: dict[str, float] = {}
    async with NatsJetStreamPublisher(NATS_URL) as pub:
        clock = AckClock(pub)
        relay = OutboxRelay(
            factory, clock, subject_prefix=prefix, config=RelayConfig(poll_interval_seconds=5)
        )
        runner = asyncio.create_task(relay.run())
        await asyncio.sleep(0.5)  # LISTEN is in place
        for i in range(LATENCY_EVENTS):
            async with factory() as session:
                async with session.begin():
                    event = OrderPlaced(aggregate_id=uuid7(), seq=i)
                    await recorder.record(session, [event])
                    row = await session.execute(
                        text("SELECT delivery_id FROM qx_outbox_events ORDER BY id DESC LIMIT 1")
                    )
                    delivery = str(row.scalar_one())
                committed[delivery] = time.perf_counter()
            await asyncio.sleep(0.01)
        for _ in range(500):
            if len(clock.acked) >= LATENCY_EVENTS:
                break
            await asyncio.sleep(0.01)
        relay.stop()
        await runner
    samples = sorted((clock.acked[d] - t) * 1000 for d, t in committed.items() if d in clock.acked)
    assert len(samples) == LATENCY_EVENTS, len(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return statistics.median(samples), p99


async def main() -> None:
    await recreate_database()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=DB_URL)
    tag = uuid.uuid4().hex[:8]
    try:
        prefix, stream = f"benchhand{tag}", f"BENCH_HAND_{tag}"
        await fresh_outbox(engine)
        await with_stream(prefix, stream)
        hand = await hand_written_loop(prefix)
        assert await drop_stream(stream) == EVENTS

        prefix, stream = f"benchqxdb{tag}", f"BENCH_QXDB_{tag}"
        await fresh_outbox(engine)
        await with_stream(prefix, stream)
        ours = await qxdb_relay(engine, prefix)
        assert await drop_stream(stream) == EVENTS

        prefix, stream = f"benchlat{tag}", f"BENCH_LAT_{tag}"
        async with engine.begin() as conn:
            await conn.run_sync(TABLE.metadata.drop_all)
            await conn.run_sync(TABLE.metadata.create_all)
        await with_stream(prefix, stream)
        p50, p99 = await latency(engine, prefix)
        await drop_stream(stream)
    finally:
        await engine.dispose()
    print(f"hand-written asyncpg + nats-py loop : {hand:10,.0f} events/s")
    print(f"qxdb OutboxRelay (1 worker)         : {ours:10,.0f} events/s")
    print(f"ratio qxdb / hand-written           : {ours / hand:10.2f}x  (target >= 1.10)")
    print(
        f"commit -> stream ack, NOTIFY wake   : p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 < 20)"
    )
    print(
        f"targets: >= 10,000 events/s {'met' if ours >= 10_000 else 'NOT met'}; "
        f"ratio {'met' if ours / hand >= 1.1 else 'NOT met'}; p50 {'met' if p50 < 20 else 'NOT met'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
