"""Events/s: a unit of work committing 100 integration events vs raw asyncpg ``executemany``.

Run: ``python benchmarks/outbox_record.py [--quick]`` (PostgreSQL from
``QXDB_BENCH_DATABASE_URL``, else a ``qxdb_bench_outbox`` database on the local server,
created if missing).

Per transaction both sides turn the same 100 events into outbox rows (envelope as JSON,
fresh UUID v7 ids), commit them and wake a relay (``pg_notify``). The unit of work also
drains the events from the aggregate, stamps them from the request context and inserts
through SQLAlchemy. The baseline is what a user would write by hand for the fastest
result: the rows built directly from the event's attributes (no qxdb code: ``uuid_utils``
ids, a dict literal for the envelope, ``json.dumps``), then ``executemany`` and
``pg_notify`` on one asyncpg connection inside a transaction. Both sides run interleaved
in rounds (benchmarks/_common.py). Target: at least 0.6 of raw's events/s (time ratio
<= 1.67).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from _common import Comparison, ensure_database, plain_dsn, print_header, print_table, rounds
from sqlalchemy.engine import make_url
from uuid_utils.compat import uuid7 as fast_uuid7

from qxdb import (
    AggregateRoot,
    DatabaseSettings,
    DefaultOutboxRecorder,
    IntegrationEvent,
    UnitOfWork,
    create_engine,
    include_outbox_table,
    make_metadata,
    make_session_factory,
    request_scope,
    uuid7,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_outbox"
EVENTS = 100
TRANSACTIONS = 40
ROUNDS = rounds(7)

metadata = make_metadata()
outbox = include_outbox_table(metadata)
COLUMNS = (
    "id",
    "event_name",
    "event_version",
    "payload",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "tenant_id",
    "delivery_id",
    "ordering_key",
)
# A constant statement naming the benchmark's own table (nothing user-supplied in it).
RAW_INSERT = (
    "INSERT INTO qx_outbox_events (id, event_name, event_version, payload, occurred_at, "
    "correlation_id, causation_id, tenant_id, delivery_id, ordering_key) "
    "VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10)"
)


class OrderPlaced(IntegrationEvent):
    event_name = "orders.placed"
    order_no: int
    total: str
    lines: list[dict[str, int]]


@dataclass(kw_only=True, eq=False)
class Order(AggregateRoot):
    pass


def make_events(aggregate: Order) -> list[IntegrationEvent]:
    lines = [{"sku": i, "qty": 2} for i in range(3)]
    return [
        OrderPlaced(order_no=i, total="12.50", lines=lines, aggregate_id=aggregate.id)
        for i in range(EVENTS)
    ]


async def run_uow(uow: UnitOfWork, order: Order, events: list[IntegrationEvent]) -> float:
    with request_scope(tenant_id=uuid7(), user_id=uuid7()):
        started = time.perf_counter()
        for _ in range(TRANSACTIONS):
            async with uow.begin() as tx:
                for event in events:
                    order.record_event(event)
                tx.track(order)
        return time.perf_counter() - started


def hand_row(event: OrderPlaced) -> tuple[Any, ...]:
    """One outbox row written by hand from the event's attributes: no qxdb code."""
    key = event.ordering_key or (str(event.aggregate_id) if event.aggregate_id else None)

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    envelope = {
        "event_id": str(event.event_id),
        "event_name": event.event_name,
        "event_version": event.event_version,
        "occurred_at": event.occurred_at.isoformat(),
        "correlation_id": text(event.correlation_id),
        "causation_id": text(event.causation_id),
        "tenant_id": text(event.tenant_id),
        "actor_id": text(event.actor_id),
        "aggregate_id": text(event.aggregate_id),
        "ordering_key": key,
        "payload": {"order_no": event.order_no, "total": event.total, "lines": event.lines},
    }
    return (
        fast_uuid7(),
        event.event_name,
        event.event_version,
        json.dumps(envelope),
        event.occurred_at,
        event.correlation_id,
        event.causation_id,
        event.tenant_id,
        fast_uuid7(),
        key,
    )


async def run_raw(conn: asyncpg.Connection, events: list[OrderPlaced]) -> float:
    started = time.perf_counter()
    for _ in range(TRANSACTIONS):
        rows = [hand_row(event) for event in events]
        async with conn.transaction():
            await conn.executemany(RAW_INSERT, rows)
            await conn.execute("SELECT pg_notify('qx_outbox_events', '')")
    return time.perf_counter() - started


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    raw = await asyncpg.connect(plain_dsn(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        uow = UnitOfWork(make_session_factory(engine), outbox=DefaultOutboxRecorder(outbox))
        order = Order()
        events = make_events(order)
        await run_uow(uow, order, events)  # warm-up
        await run_raw(raw, events)
        print_header(
            f"outbox recording: {TRANSACTIONS} commits of {EVENTS} events per round",
            "raw asyncpg executemany + pg_notify, rows built by hand (no qxdb code)",
        )
        line = Comparison(
            "UnitOfWork commit vs raw executemany",
            unit="s",
            count=TRANSACTIONS * EVENTS,
            per="events",
            target="events/s >= 0.6 of raw (median ratio <= 1.67)",
        )
        for r in range(ROUNDS):
            if r % 2 == 0:
                ours = await run_uow(uow, order, events)
                base = await run_raw(raw, events)
            else:
                base = await run_raw(raw, events)
                ours = await run_uow(uow, order, events)
            line.add(ours, base)
        n = TRANSACTIONS * EVENTS
        count = await raw.fetchval("SELECT count(*) FROM qx_outbox_events")
        assert count == 2 * n * (ROUNDS + 1), count
        line.verdict = line.ratios.median <= 1 / 0.6
        print(f"PostgreSQL {make_url(url).render_as_string()}")
        print_table([line], ROUNDS)
        print("targets:", "met" if line.verdict else "MISSED")
        return 0
    finally:
        await raw.close()
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
