"""Keyset pages on 1,000,000 PostgreSQL rows: qxdb against hand-written keyset SQL, and OFFSET.

    python benchmarks/keyset.py [--quick]   # QXDB_BENCH_DATABASE_URL, or a local bench database

Creates the table once (``generate_series``) and reuses it on later runs. For four sort
specs (uniform, mixed directions, a nullable column, both) it times one 50-row page at the
start, the middle and the end through :func:`qxdb.pagination.fetch_cursor_page` (cursor
decode, signature check, the query, the next cursor), interleaved round by round with the
best a user could write by hand: raw asyncpg on an open connection, the position's values
already known (no cursor at all), the index-range form of the predicate (a row value
where directions agree, ``a <= :a AND (a < :a OR id > :b)`` where they do not, the
non-NULL range then the NULLs as a second query for a nullable column). Both sides must
return the same rows. OFFSET (same Core ``select``) is printed as context.

Target: the deepest keyset page within 1.5x the first one (median of the per-round
ratios: both pages are timed in the same round, under the same load). The ratio to page 2
(the first page a cursor leads to) isolates depth from the fixed cost of a cursor.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from _common import Comparison, Sample, load, plain_dsn, print_header, rounds
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
REPEAT = rounds(51, 15)
OFFSET_REPEAT = 3  # context only: deep OFFSET pages take seconds each
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
# Hand-written SQL per scenario: (ORDER BY, the range after (:v, :id) when v is not NULL,
# the NULL part that follows it or None). NULLs sort last in every scenario here.
T = "keyset_bench_events"
HAND: dict[str, tuple[str, str, str | None]] = {
    "occurred_at asc (uniform)": ("occurred_at, id", "(occurred_at, id) > ($1, $2)", None),
    "occurred_at desc, id asc (mixed)": (
        "occurred_at DESC, id",
        "occurred_at <= $1 AND (occurred_at < $1 OR id > $2)",
        None,
    ),
    "score asc nulls last (nullable, 10% NULL)": (
        "score, id",
        "score >= $1 AND (score > $1 OR id > $2)",
        "score IS NULL",
    ),
    "score desc nulls last, id asc (both)": (
        "score DESC NULLS LAST, id",
        "score <= $1 AND (score < $1 OR id > $2)",
        "score IS NULL",
    ),
}
assert set(HAND) == set(SCENARIOS)


async def hand_page(raw: asyncpg.Connection, name: str, after: tuple[Any, Any] | None) -> list[Any]:
    order, range_after, nulls = HAND[name]
    limit = PAGE + 1  # one more, to know whether there is a next page (as qxdb does)
    if after is None:
        return list(await raw.fetch(f"SELECT * FROM {T} ORDER BY {order} LIMIT {limit}"))
    value, last_id = after
    if value is None:  # already in the NULLs: by id among them
        where, args = f"{nulls} AND id > $1", (last_id,)
        return list(
            await raw.fetch(f"SELECT * FROM {T} WHERE {where} ORDER BY id LIMIT {limit}", *args)
        )
    rows = list(
        await raw.fetch(
            f"SELECT * FROM {T} WHERE {range_after} ORDER BY {order} LIMIT {limit}", value, last_id
        )
    )
    if len(rows) < limit and nulls is not None:
        rows += await raw.fetch(
            f"SELECT * FROM {T} WHERE {nulls} ORDER BY id LIMIT {limit - len(rows)}"
        )
    return rows


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


async def _cursor_at(
    conn: AsyncConnection, sort: list[Sort], depth: int
) -> tuple[str | None, tuple[Any, Any] | None]:
    """A cursor pointing just before row ``depth``, and that row's (sort value, id)."""
    if depth == 0:
        return None, None
    spec = order_spec(sort)
    columns = [events.c[k.field] for k in spec]
    row = (
        await conn.execute(
            select(*columns).order_by(*keyset_order_by(columns, spec)).offset(depth - 1).limit(1)
        )
    ).one()
    values = dict(zip([k.field for k in spec], row, strict=True))
    cursor = CODEC.encode(values, fingerprint=sort_fingerprint(events.name, spec))
    return cursor, (row[0], values["id"])


async def _scenario(
    conn: AsyncConnection, raw: asyncpg.Connection, name: str, sort: list[Sort]
) -> tuple[list[Comparison], list[float]]:
    spec = order_spec(sort)
    columns = [events.c[k.field] for k in spec]
    ordered = select(events).order_by(*keyset_order_by(columns, spec))
    keyset_runs: list[Any] = []
    hand_runs: list[Any] = []
    offset_runs: list[Any] = []
    for depth in DEPTHS.values():
        cursor, after = await _cursor_at(conn, sort, depth)
        pagination = CursorPagination(limit=PAGE, cursor=cursor, sort=sort)
        ours = await fetch_cursor_page(conn, select(events), events, pagination, codec=CODEC)
        theirs = await hand_page(raw, name, after)
        assert [r["id"] for r in ours.items] == [r["id"] for r in theirs[:PAGE]], (name, depth)

        async def keyset(p: CursorPagination = pagination) -> None:
            page = await fetch_cursor_page(conn, select(events), events, p, codec=CODEC)
            assert len(page.items) == PAGE

        async def hand(a: tuple[Any, Any] | None = after) -> None:
            assert len(await hand_page(raw, name, a)) > PAGE

        async def offset(d: int = depth) -> None:
            rows = (await conn.execute(ordered.offset(d).limit(PAGE))).all()
            assert len(rows) == PAGE

        keyset_runs.append(keyset)
        hand_runs.append(hand)
        offset_runs.append(offset)
    # Keyset depths are timed interleaved with each other, and apart from OFFSET: a deep
    # OFFSET scan just before would evict the caches and bill the keyset page for it.
    for _ in range(WARMUP):  # prepared statements, PostgreSQL's plan cache, buffers
        for run in keyset_runs + hand_runs:
            await run()
    pairs = zip(keyset_runs, hand_runs, strict=True)
    samples = await _interleaved(REPEAT, *[run for pair in pairs for run in pair])
    lines = []
    for i, label in enumerate(DEPTHS):
        lines.append(
            Comparison(f"{name[:30]:<30} {label:<6}", ours=samples[2 * i], base=samples[2 * i + 1])
        )
    for run in offset_runs:
        await run()
    offset_ms = [s.median * 1000 for s in await _interleaved(OFFSET_REPEAT, *offset_runs)]
    return lines, offset_ms


def _paired(a: Sample, b: Sample) -> Sample:
    return Sample([x / y for x, y in zip(a.values, b.values, strict=True)])


async def _interleaved(repeat: int, *runs: Any) -> list[Sample]:
    """Seconds of each run, alternating them so load spikes hit all alike."""
    times: list[Sample] = [Sample() for _ in runs]
    for _ in range(repeat):
        for run, bucket in zip(runs, times, strict=True):
            started = time.perf_counter()
            await run()
            bucket.values.append(time.perf_counter() - started)
    return times


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await _ensure_database(url)
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    raw = await asyncpg.connect(plain_dsn(url))
    worst = 0.0
    try:
        await _ensure_rows(engine)
        print_header(
            f"keyset pages: {ROWS:,} rows, {PAGE}-row pages",
            "hand-written keyset SQL on raw asyncpg, values known (no cursor); OFFSET as context",
        )
        print(f"min/median/max of {REPEAT} interleaved rounds; ratio = ours / hand-written time")
        async with engine.connect() as conn:
            for name, sort in SCENARIOS.items():
                lines, offset_ms = await _scenario(conn, raw, name, sort)
                for line, off in zip(lines, offset_ms, strict=True):
                    print(f"{line.line()}  offset median {off:.1f} ms")
                # Depth ratios per round (both pages timed under the same load), then the
                # median: steadier on a busy machine than a ratio of two medians.
                end_first = _paired(lines[-1].ours, lines[0].ours)
                worst = max(worst, end_first.median)
                print(
                    f"{'':32}ours end/first {end_first.fmt(1.0, 2)}x, end/start "
                    f"{_paired(lines[-1].ours, lines[1].ours).fmt(1.0, 2)}x (min/median/max "
                    f"per round); offset end/first {offset_ms[-1] / offset_ms[0]:.0f}x"
                )
    finally:
        await raw.close()
        await engine.dispose()
    verdict = "met" if worst <= 1.5 else "MISSED"
    print(f"machine: {load()} at end")
    print(f"targets: deepest keyset page within 1.5x the first: worst {worst:.2f}x, {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
