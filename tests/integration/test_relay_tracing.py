"""Trace context from request to consumer, through the outbox and a real JetStream, with
the OpenTelemetry SDK's in-memory exporter: request span -> recorded event -> relay
(producer span) -> a consumer reading the header joins the same trace."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import select

from qxdb.engine import make_session_factory
from qxdb.outbox import DefaultOutboxRecorder
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.tracing import current_trace_headers
from tests.integration.test_relay import (
    TABLE,
    StreamScope,
    keyed_events,
    make_outbox,
    scope,
    status_counts,
)
from tests.integration.test_relay_ordered import clean_env, relay_command

__all__ = ["scope"]

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def tracer() -> Iterator[trace.Tracer]:
    # The global provider can be set once per process; every test of this module shares it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    EXPORTER.clear()
    yield trace.get_tracer("qxdb-tests")
    EXPORTER.clear()


async def record_in_requests(engine: Any, tracer: trace.Tracer, count: int) -> dict[str, int]:
    """``count`` events, ten per request span; event id -> the request's trace id."""
    factory = make_session_factory(engine)
    recorder = DefaultOutboxRecorder(TABLE)
    events = keyed_events(count, 50)
    traces: dict[str, int] = {}
    for start in range(0, count, 10):
        with tracer.start_as_current_span("POST /orders") as span:
            async with factory() as session, session.begin():
                await recorder.record(session, events[start : start + 10])
            trace_id = span.get_span_context().trace_id
        for event in events[start : start + 10]:
            traces[str(event.event_id)] = trace_id
    return traces


async def delivery_events(engine: Any) -> dict[str, str]:
    """delivery id (the consumer's Nats-Msg-Id) -> event id, for every row now."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(TABLE.c.delivery_id, TABLE.c.payload))
        return {str(d): str(p["event_id"]) for d, p in rows}


async def consume(s: StreamScope, expected: int) -> list[tuple[str, dict[str, str]]]:
    """(Nats-Msg-Id, headers) of every message in the stream."""
    async with NatsJetStreamPublisher(s.url) as pub:
        js = pub.connection.jetstream()
        total = (await js.stream_info(s.stream)).state.messages
        assert total == expected
        found: list[tuple[str, dict[str, str]]] = []
        done = asyncio.Event()

        async def on(msg: Any) -> None:
            found.append((msg.headers["Nats-Msg-Id"], dict(msg.headers)))
            if len(found) >= total:
                done.set()

        sub = await js.subscribe(f"{s.prefix}.>", stream=s.stream, cb=on, ordered_consumer=True)
        await asyncio.wait_for(done.wait(), 60)
        await sub.unsubscribe()
    return found


def consumer_joins(headers: dict[str, str]) -> trace.SpanContext:
    """What a consumer does: extract the context and start its span under it."""
    context = TraceContextTextMapPropagator().extract(headers)
    with trace.get_tracer("consumer").start_as_current_span("process", context=context) as span:
        return span.get_span_context()


@pytest.mark.postgres_only
async def test_a_thousand_events_keep_their_trace_from_request_to_consumer(
    postgres_url: str, scope: StreamScope, tracer: trace.Tracer
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        by_event = await record_in_requests(engine, tracer, 1_000)
        traces = {d: by_event[e] for d, e in (await delivery_events(engine)).items()}
        async with engine.connect() as conn:
            stored = list((await conn.execute(select(TABLE.c.headers))).scalars())
        assert all(h["traceparent"].startswith("00-") for h in stored)
        EXPORTER.clear()
        async with NatsJetStreamPublisher(scope.url, stream=scope.stream) as pub:
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=scope.prefix,
                config=RelayConfig(batch_size=200),
            )
            counters = await relay.run(once=True)
        assert counters.published == 1_000
        producers = {
            s.attributes["messaging.message.id"]: s
            for s in EXPORTER.get_finished_spans()
            if s.kind == trace.SpanKind.PRODUCER
        }
        assert len(producers) == 1_000
        messages = await consume(scope, 1_000)
        joined = 0
        for msg_id, headers in messages:
            span = producers[msg_id]
            assert span.name == f"publish {scope.prefix}.orders.placed"
            assert span.attributes["messaging.system"] == "nats"
            assert span.attributes["messaging.destination.name"] == f"{scope.prefix}.orders.placed"
            assert span.context.trace_id == traces[msg_id]  # the request's trace goes on
            assert span.parent is not None
            consumer = consumer_joins(headers)
            # The consumer sits below the producer span, in the request's trace.
            joined += consumer.trace_id == traces[msg_id]
            assert f"-{span.context.span_id:016x}-" in headers["traceparent"]
        assert joined == 1_000
    finally:
        await engine.dispose()


def test_no_span_no_headers(tracer: trace.Tracer) -> None:
    assert current_trace_headers() == {}
    with tracer.start_as_current_span("request") as span:
        headers = current_trace_headers()
    context = span.get_span_context()
    # The flags byte is the SDK's (sampled, and "random trace id" on newer SDKs).
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")


def test_without_opentelemetry_nothing_is_imported(tmp_path: Any) -> None:
    """Recording and relaying import no opentelemetry when it is not installed."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # what Python finds when it is not installed\n"
        "from qxdb.outbox.tracing import current_trace_headers, tracing_available\n"
        "import qxdb.outbox.relay, qxdb.outbox.recorder\n"
        "assert not tracing_available() and current_trace_headers() == {}\n"
        "assert [m for m in sys.modules if m.startswith('opentelemetry')] == ['opentelemetry']\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.postgres_only
@pytest.mark.slow
async def test_the_trace_survives_a_relay_sigkill_and_a_replay(
    postgres_url: str, scope: StreamScope, tracer: trace.Tracer
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        traces = await record_in_requests(engine, tracer, 1_000)
        deliveries = await delivery_events(engine)
        proc = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, scope, "--batch-size", "50", "--lease-seconds", "1"),
            env=clean_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(1000):
            if (await status_counts(engine))["published"] >= 100:
                break
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        # Replay 100 published events: fresh delivery ids (new messages), same trace.
        async with engine.connect() as conn:
            again = tuple(
                (
                    await conn.execute(
                        select(TABLE.c.id).where(TABLE.c.published_at.is_not(None)).limit(100)
                    )
                ).scalars()
            )
        report = await OutboxStore(engine).replay(OutboxSelection(ids=again))
        assert report.rows == 100
        deliveries |= await delivery_events(engine)
        await asyncio.sleep(1.2)  # the killed relay's leases run out
        async with NatsJetStreamPublisher(scope.url, stream=scope.stream) as pub:
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=scope.prefix)
            await relay.run(once=True)
        messages = await consume(scope, 1_100)
        # Every message (first sends, re-sends after the kill, replays) joins its trace.
        joined = sum(
            consumer_joins(headers).trace_id == traces[deliveries[msg_id]]
            for msg_id, headers in messages
        )
        assert joined == 1_100
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_an_unsampled_request_gets_no_producer_span_and_keeps_its_context(
    postgres_url: str, scope: StreamScope, tracer: trace.Tracer
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        unsampled = trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=trace.TraceFlags(0),
        )
        with trace.use_span(trace.NonRecordingSpan(unsampled)):
            async with make_session_factory(engine)() as session, session.begin():
                await DefaultOutboxRecorder(TABLE).record(session, keyed_events(20, 2))
        EXPORTER.clear()
        async with NatsJetStreamPublisher(scope.url, stream=scope.stream) as pub:
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix=scope.prefix)
            assert (await relay.run(once=True)).published == 20
        assert [s for s in EXPORTER.get_finished_spans() if s.kind == trace.SpanKind.PRODUCER] == []
        expected = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        assert {h["traceparent"] for _, h in await consume(scope, 20)} == {expected}
    finally:
        await engine.dispose()
