"""Keyset vs OFFSET pagination on 1,000,000 PostgreSQL rows, side by side.

    python benchmarks/keyset.py            # QXDB_BENCH_DATABASE_URL, or a local bench database

Creates the table once (``generate_series``) and reuses it on later runs. For three sort
specs (uniform, mixed directions, a nullable column) it times one 50-row page at the
start, the middle and the end, through :func:`qxdb.pagination.fetch_cursor_page` (cursor
decode, signature check, the query) and through the same Core ``select`` with OFFSET.
Target: the deepest keyset page within 1.5x the first one. The ratio to page 2 (the first
page a cursor leads to) is printed too: it isolates depth from the fixed cost of a cursor.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qxdb import CursorCodec, CursorPagination, DatabaseSettings, Sort, create_engine
from qxdb.mapping import timestamp_column, uuid_column
from qxdb.pagination import fetch_cursor_page, keyset_order_by, sort_fingerprint
from qxdb.query import order_spec

ROWS = 1_000_000
PAGE = 50
REPEAT = 51
OFFSET_REPEAT = 7
WARMUP = 8
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_keyset"
CODEC = CursorCodec(secret="bench-secret")

metadata = MetaData()
events = Table(
    "keyset_bench_events",
    metadata,
    uuid_column("id", primary_key=True),
    timestamp_column("occurred_at", nullable=False),
    Column("score", Integer, nullable=True),
    Column("kind", String(8), nullable=False),
)
Index("ix_kbe_occurred_desc_id", events.c.occurred_at.desc(), events.c.id)
Index("ix_kbe_occurred_id", events.c.occurred_at, events.c.id)
Index("ix_kbe_score_id", events.c.score, events.c.id)
Index("ix_kbe_score_desc_nl_id", events.c.score.desc().nulls_last(), events.c.id)

SCENARIOS: dict[str, list[Sort]] = {
    "occurred_at asc (uniform)": [Sort("occurred_at", "asc")],
    "occurred_at desc, id asc (mixed)": [Sort("occurred_at", "desc"), Sort("id", "asc")],
    "score asc nulls last (nullable, 10% NULL)": [Sort("score", "asc")],
    "score desc nulls last, id asc (both)": [Sort("score", "desc", "last"), Sort("id", "asc")],
}
# "first" has no cursor at all; "start" is page 2, the first page a cursor leads to. The
# end/start ratio measures depth alone, without the fixed cost of carrying a cursor
# (decode, HMAC check, a WHERE); the target is end/first, both are printed.
DEPTHS = {"first": 0, "start": PAGE, "middle": ROWS // 2, "end": ROWS * 99 // 100}


async def _ensure_database(url: str) -> None:
    import asyncpg

    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    base, _, name = plain.rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # CREATE DATABASE takes no bind parameters; quote_ident does the quoting.
            quoted = await admin.fetchval("SELECT quote_ident($1)", name)
            await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()


def _create_missing_indexes(sync: Any) -> None:
    for index in events.indexes:
        index.create(sync, checkfirst=True)


async def _ensure_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        count = (await conn.execute(select(func.count()).select_from(events))).scalar_one()
        if count == ROWS:
            # Indexes added since the table was made (create_all skips existing tables).
            await conn.run_sync(_create_missing_indexes)
            return
        print(f"creating {ROWS:,} rows (once; reused by later runs) ...", file=sys.stderr)
        await conn.execute(events.delete())
        series = func.generate_series(1, ROWS).table_valued("i").render_derived(name="series")
        i = series.c.i
        base = literal(datetime(2024, 1, 1, tzinfo=UTC), events.c.occurred_at.type)
        # Three rows share each millisecond; score repeats and is NULL on every 10th row.
        step = cast(func.concat(i // 3, " milliseconds"), INTERVAL)
        score = func.nullif(i % 10, 0) * 0 + ((i % 1009) * 37) % 1000
        await conn.execute(
            insert(events).from_select(
                ["id", "occurred_at", "score", "kind"],
                select(
                    func.gen_random_uuid(),
                    base + step,
                    score,
                    func.substr("abc", (i % 3) + 1, 1),
                ).select_from(series),
            )
        )
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        quoted = autocommit.dialect.identifier_preparer.format_table(events)
        await autocommit.exec_driver_sql(f"VACUUM ANALYZE {quoted}")


async def _interleaved_medians(repeat: int, *runs: Any) -> list[float]:
    """Median milliseconds of each run, alternating them so load spikes hit all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, bucket in zip(runs, times, strict=True):
            started = time.perf_counter()
            await run()
            bucket.append((time.perf_counter() - started) * 1000)
    return [statistics.median(bucket) for bucket in times]


async def _cursor_at(conn: AsyncConnection, sort: list[Sort], depth: int) -> str | None:
    """A cursor pointing just before row ``depth`` (untimed setup)."""
    if depth == 0:
        return None
    spec = order_spec(sort)
    columns = [events.c[k.field] for k in spec]
    row = (
        await conn.execute(
            select(*columns).order_by(*keyset_order_by(columns, spec)).offset(depth - 1).limit(1)
        )
    ).one()
    return CODEC.encode(
        dict(zip([k.field for k in spec], row, strict=True)),
        fingerprint=sort_fingerprint(events.name, spec),
    )


async def _scenario(conn: AsyncConnection, sort: list[Sort]) -> list[tuple[str, float, float]]:
    spec = order_spec(sort)
    columns = [events.c[k.field] for k in spec]
    ordered = select(events).order_by(*keyset_order_by(columns, spec))
    keyset_runs: list[Any] = []
    offset_runs: list[Any] = []
    for depth in DEPTHS.values():
        pagination = CursorPagination(
            limit=PAGE, cursor=await _cursor_at(conn, sort, depth), sort=sort
        )

        async def keyset(p: CursorPagination = pagination) -> None:
            page = await fetch_cursor_page(conn, select(events), events, p, codec=CODEC)
            assert len(page.items) == PAGE

        async def offset(d: int = depth) -> None:
            rows = (await conn.execute(ordered.offset(d).limit(PAGE))).all()
            assert len(rows) == PAGE

        keyset_runs.append(keyset)
        offset_runs.append(offset)
    # Keyset depths are timed interleaved with each other, and apart from OFFSET: a deep
    # OFFSET scan just before would evict the caches and bill the keyset page for it.
    for _ in range(WARMUP):  # prepared statements, PostgreSQL's plan cache, buffers
        for run in keyset_runs:
            await run()
    keyset_ms = await _interleaved_medians(REPEAT, *keyset_runs)
    for run in offset_runs:
        await run()
    offset_ms = await _interleaved_medians(OFFSET_REPEAT, *offset_runs)
    return list(zip(DEPTHS, keyset_ms, offset_ms, strict=True))


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await _ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    worst = 0.0
    try:
        await _ensure_rows(engine)
        print(
            f"{ROWS:,} rows, {PAGE}-row pages, median ms of {REPEAT} keyset / "
            f"{OFFSET_REPEAT} offset runs; load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'sort':44} {'page':7} {'keyset':>8} {'offset':>9}")
        async with engine.connect() as conn:
            for name, sort in SCENARIOS.items():
                results = await _scenario(conn, sort)
                for label, keyset_ms, offset_ms in results:
                    print(f"{name:44} {label:7} {keyset_ms:8.2f} {offset_ms:9.2f}")
                ratio = results[-1][1] / results[0][1]
                worst = max(worst, ratio)
                print(
                    f"{'':44} keyset end/first: {ratio:.2f}x, end/start: "
                    f"{results[-1][1] / results[1][1]:.2f}x; offset end/first: "
                    f"{results[-1][2] / results[0][2]:.0f}x"
                )
    finally:
        await engine.dispose()
    verdict = "met" if worst <= 1.5 else "MISSED"
    print(f"target: deepest keyset page within 1.5x the first: worst {worst:.2f}x, {verdict}")
    return 0 if worst <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
