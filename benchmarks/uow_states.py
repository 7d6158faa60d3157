"""What the unit of work's state machine costs: guarded statements and single-event commits.

Run: ``python benchmarks/uow_states.py`` (PostgreSQL from ``QXDB_BENCH_DATABASE_URL``, else a
``qxdb_bench_uow`` database on the local server, created if missing).

Two pairs, interleaved in rounds on one pooled connection, each side doing the same SQL:

- **reads**: 200 ``Repository.get`` calls inside one open scope (each statement passes the
  state check and the scope's lock) vs the same 200 calls on a repository bound to a
  plain ``AsyncSession`` (no unit of work, no guard);
- **commits**: single-aggregate commits with one integration event through
  ``async with uow.begin()`` (scope, guard, drain, outbox INSERT, COMMIT) vs the same
  INSERT of the row, the same recorder INSERT and COMMIT on a plain session.

Prints min / median / max of the per-round ratio baseline/qxdb (1.0: no cost). Target:
reads >= 0.9, commits >= 0.8. The machine is shared: quote ``uptime`` with the figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

import asyncpg
from sqlalchemy import Column, Integer, String, Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from qxdb import (
    AggregateRoot,
    DatabaseSettings,
    DefaultOutboxRecorder,
    IntegrationEvent,
    Repository,
    UnitOfWork,
    create_engine,
    include_outbox_table,
    make_metadata,
    make_session_factory,
    request_scope,
    standard_audit_columns,
    uuid7,
    uuid_column,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_uow"
READS = 200
COMMITS = 100
ROUNDS = 7

metadata = make_metadata()
items = Table(
    "bench_items",
    metadata,
    uuid_column("id", primary_key=True),
    Column("name", String(50), nullable=False),
    Column("n", Integer, nullable=False),
    *standard_audit_columns(),
)
outbox = include_outbox_table(metadata)


class ItemAdded(IntegrationEvent):
    event_name = "items.added"
    n: int


@dataclass(kw_only=True, eq=False)
class Item(AggregateRoot):
    name: str = "x"
    n: int = 0


class ItemRepository(Repository[Item]):
    entity_cls = Item
    table = items
    tenanted = False


async def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        name = target.database or "qxdb_bench_uow"
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute("CREATE DATABASE " + asyncpg.utils._quote_ident(name))
    finally:
        await conn.close()


async def reads_uow(uow: UnitOfWork, ids: list[object]) -> float:
    started = time.perf_counter()
    async with uow.begin() as tx:
        repo = tx.items
        for id_ in ids:
            await repo.get(id_)
    return time.perf_counter() - started


async def reads_plain(session: AsyncSession, ids: list[object]) -> float:
    started = time.perf_counter()
    repo = ItemRepository(session)
    for id_ in ids:
        await repo.get(id_)  # type: ignore[arg-type]
    await session.commit()
    return time.perf_counter() - started


async def commits_uow(uow: UnitOfWork) -> float:
    started = time.perf_counter()
    for n in range(COMMITS):
        async with uow.begin() as tx:
            item = Item(name="u", n=n)
            item.record_event(ItemAdded(n=n))
            await tx.items.add(item)
    return time.perf_counter() - started


async def commits_plain(session: AsyncSession, recorder: DefaultOutboxRecorder) -> float:
    started = time.perf_counter()
    repo = ItemRepository(session)
    for n in range(COMMITS):
        item = Item(name="p", n=n)
        item.record_event(ItemAdded(n=n))
        await repo.add(item)
        await recorder.record(session, item.pull_events())
        await session.commit()
    return time.perf_counter() - started


def summary(label: str, ratios: list[float], target: float) -> str:
    return (
        f"{label:<8} ratio plain/uow: min {min(ratios):.2f}  median "
        f"{statistics.median(ratios):.2f}  max {max(ratios):.2f}  (target >= {target})"
    )


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        factory = make_session_factory(engine)
        recorder = DefaultOutboxRecorder(outbox)
        uow = UnitOfWork(factory, outbox=recorder, repositories={"items": ItemRepository})
        with request_scope(tenant_id=uuid7(), user_id=uuid7()):
            await commits_uow(uow)  # warm-up, and rows to read
            async with factory() as session:
                await commits_plain(session, recorder)
            ids: list[object] = []
            async with uow.begin() as tx:
                page = await tx.items.list()
                ids = [i.id for i in page.items] * (READS // max(1, len(page.items)))
            read_ratios: list[float] = []
            commit_ratios: list[float] = []
            for _ in range(ROUNDS):
                async with factory() as session:
                    plain = await reads_plain(session, ids)
                guarded = await reads_uow(uow, ids)
                read_ratios.append(plain / guarded)
                async with factory() as session:
                    plain = await commits_plain(session, recorder)
                guarded = await commits_uow(uow)
                commit_ratios.append(plain / guarded)
        print(
            f"PostgreSQL {make_url(url).render_as_string()}; {ROUNDS} interleaved rounds: "
            f"{len(ids)} reads in one scope, {COMMITS} single-event commits (shared machine)"
        )
        print(summary("reads", read_ratios, 0.9))
        print(summary("commits", commit_ratios, 0.8))
        return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
