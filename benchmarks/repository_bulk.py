"""``Repository.upsert_many`` and ``Repository.stream`` at scale (issue 19).

Run: ``python benchmarks/repository_bulk.py [--quick]`` (PostgreSQL from
``QXDB_BENCH_DATABASE_URL``, else a ``qxdb_bench_repository_bulk`` database on the local
server, created if missing).

Upsert: each round the table is reset (untimed) to ``ROWS / 2`` stored rows, then ``ROWS``
entities are written, half of them updates of stored rows (by id), half new rows:

- ours: ``upsert_many(entities)`` and a commit;
- baseline 1, raw asyncpg ``executemany`` of the same single-row ``INSERT … ON CONFLICT
  (id) DO UPDATE … WHERE tenant`` statement with tuples prepared beforehand (no entity, no
  check, no RETURNING): target ours >= 0.7x its speed, i.e. time ratio <= 1.43;
- baseline 2, the loop a user writes without it: ``get`` then ``save`` (or ``add``) per
  entity, on ``LOOP_ROWS`` entities (a loop of 100k round trips takes minutes on a shared
  machine): target ours >= 5x faster per row.

Stream: ``STREAM_ROWS`` rows streamed with ``stream(batch=1000)``, building every entity;
the process's peak RSS growth over the stream is printed (target < 50 MB), beside raw
asyncpg reading the same rows through a server-side cursor (prefetch 1000) for time.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from _common import Comparison, ensure_database, load, plain_dsn, print_header, quick, rounds
from sqlalchemy import Column, Integer, String, Table, text

from qxdb import (
    AggregateRoot,
    DatabaseSettings,
    Repository,
    create_engine,
    make_metadata,
    make_session_factory,
    request_scope,
    standard_audit_columns,
    utcnow,
    uuid7,
    uuid_column,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_repository_bulk"
ROWS = 20_000 if quick() else 100_000
LOOP_ROWS = 2_000 if quick() else 10_000
STREAM_ROWS = 200_000 if quick() else 1_000_000
TENANT = UUID("018f0000-0000-7000-8000-000000000001")

metadata = make_metadata()
items = Table(
    "bulk_bench_items",
    metadata,
    uuid_column("id", primary_key=True),
    Column("sku", String(40), nullable=False),
    Column("name", String(100), nullable=False),
    Column("qty", Integer, nullable=True),
    *standard_audit_columns(),
)
COLUMNS = [c.name for c in items.c]

RAW_UPSERT = """
INSERT INTO bulk_bench_items (id, sku, name, qty, created_at, updated_at, created_by,
    updated_by, version, tenant_id, deleted_at, deleted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, name = excluded.name, qty = excluded.qty,
    updated_at = $13, updated_by = $14, version = bulk_bench_items.version + 1
WHERE bulk_bench_items.tenant_id = excluded.tenant_id
"""


@dataclass(kw_only=True, eq=False)
class Item(AggregateRoot):
    sku: str
    name: str
    qty: int | None = None


class ItemRepository(Repository[Item]):
    entity_cls = Item
    table = items
    filterable_fields = {"sku", "qty"}
    sortable_fields = {"sku", "qty"}


def _rss_mb() -> float:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _reset(raw: asyncpg.Connection, ids: list[UUID], stored: int) -> None:
    await raw.execute("TRUNCATE bulk_bench_items")
    now = utcnow()
    await raw.copy_records_to_table(
        "bulk_bench_items",
        records=[
            (i, f"sku{n}", "old", n, now, None, None, None, 1, TENANT, None, None)
            for n, i in enumerate(ids[:stored])
        ],
        columns=COLUMNS,
    )
    await raw.execute("ANALYZE bulk_bench_items")


def _entities(ids: list[UUID]) -> list[Item]:
    out = []
    for n, i in enumerate(ids):
        item = Item(sku=f"sku{n}", name="new", qty=-n)
        item.id = i
        out.append(item)
    return out


async def upsert(url: str, raw: asyncpg.Connection) -> list[Comparison]:
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    factory = make_session_factory(engine)
    runs = rounds(3)
    ids = [uuid7() for _ in range(ROWS)]
    vs_raw = Comparison(
        f"upsert_many {ROWS:,} rows vs asyncpg executemany",
        unit="s",
        count=ROWS,
        target="ratio <= 1.43 (>= 0.7x speed)",
    )
    vs_loop = Comparison(
        f"upsert_many vs get+save loop, {LOOP_ROWS:,} rows",
        unit="s",
        count=LOOP_ROWS,
        target="ratio <= 0.2 (>= 5x)",
    )

    async def ours(entities: list[Item]) -> None:
        async with factory() as session:
            result = await ItemRepository(session).upsert_many(entities)
            assert result.is_success, result.error
            await session.commit()

    async def baseline(records: list[tuple[object, ...]]) -> None:
        async with raw.transaction():
            await raw.executemany(RAW_UPSERT, records)

    async def loop(entities: list[Item]) -> None:
        async with factory() as session:
            repo = ItemRepository(session)
            for entity in entities:
                found = await repo.get(entity.id)
                if found.is_success:
                    stored = found.value
                    stored.name, stored.qty = entity.name, entity.qty
                    assert (await repo.save(stored)).is_success
                else:
                    assert (await repo.add(entity)).is_success
            await session.commit()

    with request_scope(tenant_id=TENANT):
        for r in range(runs):
            sides = ["ours", "raw"] if r % 2 == 0 else ["raw", "ours"]
            for side in sides:
                await _reset(raw, ids, ROWS // 2)
                if side == "ours":
                    entities = _entities(ids)
                    started = time.perf_counter()
                    await ours(entities)
                    ours_t = time.perf_counter() - started
                else:
                    now = utcnow()
                    # updated_at, created_by, updated_by, version, tenant, deleted_*; SET's.
                    rest = (None, None, None, 1, TENANT, None, None, now, None)
                    records = [(i, f"sku{n}", "new", -n, now, *rest) for n, i in enumerate(ids)]
                    started = time.perf_counter()
                    await baseline(records)
                    raw_t = time.perf_counter() - started
            vs_raw.add(ours_t, raw_t)
            small = ids[:LOOP_ROWS]
            sides = ["ours", "loop"] if r % 2 == 0 else ["loop", "ours"]
            for side in sides:
                await _reset(raw, small, LOOP_ROWS // 2)
                entities = _entities(small)
                started = time.perf_counter()
                await (ours(entities) if side == "ours" else loop(entities))
                elapsed = time.perf_counter() - started
                if side == "ours":
                    ours_t = elapsed
                else:
                    loop_t = elapsed
            vs_loop.add(ours_t, loop_t)
    await engine.dispose()
    vs_raw.verdict = vs_raw.ratios.median <= 1 / 0.7
    vs_loop.verdict = vs_loop.ratios.median <= 0.2
    return [vs_raw, vs_loop]


async def stream(url: str, raw: asyncpg.Connection) -> tuple[Comparison, float]:
    count = await raw.fetchval("SELECT count(*) FROM bulk_bench_items")
    if count != STREAM_ROWS:
        # Seeded by the server: building a million rows here would grow this process's
        # heap before the stream's memory is measured.
        await raw.execute("TRUNCATE bulk_bench_items")
        await raw.execute(
            "INSERT INTO bulk_bench_items (id, sku, name, qty, created_at, version, tenant_id) "
            "SELECT gen_random_uuid(), 'sku' || n, 'old', n, now(), 1, $1 "
            "FROM generate_series(1, $2) AS n",
            TENANT,
            STREAM_ROWS,
        )
        await raw.execute("ANALYZE bulk_bench_items")
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    factory = make_session_factory(engine)
    line = Comparison(
        f"stream {STREAM_ROWS:,} rows (batch 1000) vs asyncpg cursor",
        unit="s",
        count=STREAM_ROWS,
    )
    growth = 0.0
    with request_scope(tenant_id=TENANT):
        for r in range(rounds(3)):
            for side in ["ours", "raw"] if r % 2 == 0 else ["raw", "ours"]:
                started = time.perf_counter()
                seen = 0
                if side == "ours":
                    async with factory() as session:
                        repo = ItemRepository(session)
                        before = peak = None
                        async for _item in repo.stream(batch=1000):
                            seen += 1
                            if seen % 1000 == 1:  # once a batch: the first one is in
                                now_mb = _rss_mb()
                                before = now_mb if before is None else before
                                peak = max(peak or now_mb, now_mb)
                        assert before is not None and peak is not None
                        growth = max(growth, peak - before)
                    ours_t = time.perf_counter() - started
                else:
                    async with raw.transaction():
                        async for _row in raw.cursor(
                            "SELECT * FROM bulk_bench_items WHERE tenant_id = $1 "
                            "AND deleted_at IS NULL ORDER BY id",
                            TENANT,
                            prefetch=1000,
                        ):
                            seen += 1
                    raw_t = time.perf_counter() - started
                assert seen == STREAM_ROWS, seen
            line.add(ours_t, raw_t)
    await engine.dispose()
    return line, growth


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(text("SELECT 1"))
    await engine.dispose()
    raw = await asyncpg.connect(plain_dsn(url))
    try:
        print_header(
            "repository at scale: upsert_many and stream",
            "raw asyncpg executemany of the same upsert; a get+save loop; an asyncpg cursor",
        )
        # The stream first: its memory is measured before the upserts have grown the heap.
        stream_line, growth = await stream(url, raw)
        print(stream_line.line())
        verdict = "met" if growth < 50 else "MISSED"
        print(
            f"stream RSS growth over {STREAM_ROWS:,} rows (sampled each batch): "
            f"{growth:.1f} MB [< 50 MB {verdict}]"
        )
        for line in await upsert(url, raw):
            print(line.line())
    finally:
        await raw.close()
    print(f"min/median/max of {rounds(3)} interleaved rounds; ratio = ours / baseline time")
    print(f"machine: {load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
