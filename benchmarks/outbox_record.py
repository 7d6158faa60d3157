"""Events/s: a unit of work committing 100 integration events vs raw asyncpg ``executemany``.

Run: ``python benchmarks/outbox_record.py`` (PostgreSQL from ``QXDB_BENCH_DATABASE_URL``,
else a ``qxdb_bench_outbox`` database on the local server, created if missing).

Per transaction both sides turn the same 100 events into outbox rows (envelope as JSON,
fresh UUID v7 ids) and commit them. The unit of work also drains the events from the
aggregate, stamps them from the request context and inserts through SQLAlchemy; the
baseline is one asyncpg connection running ``executemany`` inside a transaction.
Both run on one connection, interleaved in rounds. Target: at least 0.6 of raw.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

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
from qxdb.outbox import outbox_row

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_outbox"
EVENTS = 100
TRANSACTIONS = 40
ROUNDS = 7

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


async def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        name = target.database or "qxdb_bench_outbox"
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute("CREATE DATABASE " + asyncpg.utils._quote_ident(name))
    finally:
        await conn.close()


async def run_uow(uow: UnitOfWork, order: Order, events: list[IntegrationEvent]) -> float:
    with request_scope(tenant_id=uuid7(), user_id=uuid7()):
        started = time.perf_counter()
        for _ in range(TRANSACTIONS):
            async with uow.begin() as tx:
                for event in events:
                    order.record_event(event)
                tx.track(order)
        return time.perf_counter() - started


async def run_raw(conn: asyncpg.Connection, events: list[IntegrationEvent]) -> float:
    started = time.perf_counter()
    for _ in range(TRANSACTIONS):
        rows = []
        for event in events:
            row = outbox_row(event)
            row["payload"] = json.dumps(row["payload"])
            rows.append(tuple(row[c] for c in COLUMNS))
        async with conn.transaction():
            await conn.executemany(RAW_INSERT, rows)
    return time.perf_counter() - started


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    raw = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        uow = UnitOfWork(make_session_factory(engine), outbox=DefaultOutboxRecorder(outbox))
        order = Order()
        events = make_events(order)
        await run_uow(uow, order, events)  # warm-up
        await run_raw(raw, events)
        uow_times: list[float] = []
        raw_times: list[float] = []
        for _ in range(ROUNDS):
            uow_times.append(await run_uow(uow, order, events))
            raw_times.append(await run_raw(raw, events))
        n = TRANSACTIONS * EVENTS
        count = await raw.fetchval("SELECT count(*) FROM qx_outbox_events")
        assert count == 2 * n * (ROUNDS + 1), count
        uow_s, raw_s = statistics.median(uow_times), statistics.median(raw_times)
        print(
            f"PostgreSQL {make_url(url).render_as_string()}; {ROUNDS} rounds x {TRANSACTIONS} "
            f"commits of {EVENTS} events each side (median round; the machine is shared)"
        )
        print(f"raw asyncpg executemany: {n / raw_s:10,.0f} events/s")
        print(f"UnitOfWork commit:       {n / uow_s:10,.0f} events/s")
        print(f"ratio: {raw_s / uow_s:.2f} (target >= 0.6)")
        return 0
    finally:
        await raw.close()
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
