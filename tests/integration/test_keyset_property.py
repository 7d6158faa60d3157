"""Property: paging by keyset, forwards or backwards, at any page size, is the ORDER BY.

Random tables with duplicates, NULLs and rows that differ only by a microsecond; random
sort specs of one to three columns in any directions and NULL placements. Every walk must
give exactly the rows of one unpaged ORDER BY query (itself checked against a Python sort),
in order, with no duplicate and no gap.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qxdb import CursorCodec, CursorPagination, Sort, timestamp_column, uuid_column
from qxdb.pagination import fetch_cursor_page, keyset_order_by
from qxdb.query import order_spec

BASE = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
MOMENTS = [
    BASE,
    BASE + timedelta(microseconds=1),
    BASE + timedelta(microseconds=2),
    BASE + timedelta(seconds=1),
]
CODEC = CursorCodec(secret="property-secret")

metadata = MetaData()
things = Table(
    "keyset_things",
    metadata,
    uuid_column("id", primary_key=True),
    Column("a", Integer, nullable=True),
    Column("b", String(8), nullable=True),
    timestamp_column("c", nullable=True),
    Column("d", Integer, nullable=False),
)

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.uuids(),
            "a": st.sampled_from([None, 0, 1, 2]),
            "b": st.sampled_from([None, "", "a", "ab", "b"]),
            "c": st.sampled_from([None, *MOMENTS]),
            "d": st.integers(0, 2),
        }
    ),
    max_size=24,
    unique_by=lambda r: r["id"],
)
sort_strategy = st.lists(
    st.builds(
        Sort,
        st.sampled_from(["a", "b", "c", "d", "id"]),
        st.sampled_from(["asc", "desc"]),
        st.sampled_from([None, "first", "last"]),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda s: s.field,
)


def _python_order(rows: list[dict[str, Any]], spec: tuple[Sort, ...]) -> list[uuid.UUID]:
    """The order the database must produce, computed independently (stable multi-pass sort)."""
    ordered = list(rows)
    for key in reversed(spec):
        present = [r for r in ordered if r[key.field] is not None]
        missing = [r for r in ordered if r[key.field] is None]
        present.sort(key=lambda r: r[key.field], reverse=key.direction == "desc")
        ordered = missing + present if key.effective_nulls == "first" else present + missing
    return [r["id"] for r in ordered]


async def _walk(
    conn: AsyncConnection, sort: list[Sort], size: int, total: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    # A cursor that fails to advance would page forever: more pages than rows is a failure.
    budget = total // size + 2
    forward: list[uuid.UUID] = []
    cursor: str | None = None
    page_count = 0
    while True:
        page = await fetch_cursor_page(
            conn,
            select(things),
            things,
            CursorPagination(limit=size, cursor=cursor, sort=sort),
            codec=CODEC,
        )
        assert len(page.items) <= size
        assert page.has_previous == (page_count > 0)
        forward.extend(row["id"] for row in page.items)
        page_count += 1
        assert page_count <= budget, f"forward walk does not advance (page size {size})"
        if not page.has_next:
            assert page.next_cursor is None
            break
        assert len(page.items) == size
        cursor = page.next_cursor
    last_page = page
    backward = [row["id"] for row in last_page.items]
    cursor = last_page.previous_cursor
    while cursor is not None:
        page = await fetch_cursor_page(
            conn,
            select(things),
            things,
            CursorPagination(limit=size, cursor=cursor, sort=sort),
            codec=CODEC,
        )
        assert page.has_next
        assert len(page.items) == size or not page.has_previous
        backward[:0] = [row["id"] for row in page.items]
        cursor = page.previous_cursor
        page_count -= 1
        assert page_count >= -1, f"backward walk does not advance (page size {size})"
    return forward, backward


class _Table:
    created: set[int] = set()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=rows_strategy, sort=sort_strategy)
async def test_every_walk_is_the_order_by(
    engine: AsyncEngine, rows: list[dict[str, Any]], sort: list[Sort]
) -> None:
    async with engine.begin() as conn:
        if id(engine) not in _Table.created:
            await conn.run_sync(metadata.create_all)
            _Table.created.add(id(engine))
        await conn.execute(delete(things))
        if rows:
            await conn.execute(insert(things), rows)
    spec = order_spec(sort)
    columns = [things.c[k.field] for k in spec]
    async with engine.connect() as conn:
        unpaged = [
            r.id
            for r in await conn.execute(
                select(things.c.id).order_by(*keyset_order_by(columns, spec))
            )
        ]
        assert unpaged == _python_order(rows, spec)
        for size in range(1, 12):
            forward, backward = await _walk(conn, sort, size, len(rows))
            assert forward == unpaged, f"forward walk, page size {size}"
            assert backward == unpaged, f"backward walk, page size {size}"
