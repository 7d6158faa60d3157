"""fetch_cursor_page: cursors bound to their query, limits, bad cursors, sessions."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from qxdb import (
    CursorCodec,
    CursorError,
    CursorPagination,
    Filter,
    InvalidQueryError,
    Sort,
    build_cursor_page,
    make_session_factory,
    timestamp_column,
    uuid7,
    uuid_column,
)
from qxdb.pagination import fetch_cursor_page, keyset_segments, sort_fingerprint
from qxdb.query import order_spec

CODEC = CursorCodec(secret="pages-secret")
T0 = datetime(2024, 1, 1, tzinfo=UTC)

metadata = MetaData()
events = Table(
    "keyset_events",
    metadata,
    uuid_column("id", primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("score", Integer, nullable=True),
    timestamp_column("occurred_at", nullable=False),
)
other = Table(
    "keyset_other",
    metadata,
    uuid_column("id", primary_key=True),
    timestamp_column("occurred_at", nullable=False),
)


async def _seed(engine: AsyncEngine, n: int = 30) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(
            insert(events),
            [
                {
                    "id": uuid7(),
                    "kind": "a" if i % 3 else "b",
                    "score": None if i % 4 == 0 else i % 5,
                    "occurred_at": T0 + timedelta(microseconds=i // 2),
                }
                for i in range(n)
            ],
        )


async def _page(
    conn: AsyncConnection, pagination: CursorPagination, table: Table = events, **kw: Any
) -> Any:
    return await fetch_cursor_page(conn, select(table), table, pagination, codec=CODEC, **kw)


async def test_limit_may_change_between_pages(engine: AsyncEngine) -> None:
    await _seed(engine)
    sort = [Sort("score", "desc"), Sort("occurred_at")]
    async with engine.connect() as conn:
        everything = (await _page(conn, CursorPagination(limit=100, sort=sort))).items
        seen: list[Any] = []
        cursor = None
        for limit in [1, 7, 2, 11, 3, 100]:
            page = await _page(conn, CursorPagination(limit=limit, cursor=cursor, sort=sort))
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
    assert [r["id"] for r in seen] == [r["id"] for r in everything]
    assert len(everything) == 30


async def test_cursor_refused_under_another_sort_filter_or_resource(engine: AsyncEngine) -> None:
    await _seed(engine)
    sort = [Sort("occurred_at", "desc")]
    filters = [Filter("kind", "eq", "a")]
    async with engine.connect() as conn:
        stmt = select(events).where(events.c.kind == "a")
        first = await fetch_cursor_page(
            conn, stmt, events, CursorPagination(limit=3, sort=sort, filters=filters), codec=CODEC
        )
        token = first.next_cursor
        assert token is not None
        # Same query: fine.
        await fetch_cursor_page(
            conn,
            stmt,
            events,
            CursorPagination(limit=3, cursor=token, sort=sort, filters=filters),
            codec=CODEC,
        )
        for pagination, table in [
            (CursorPagination(cursor=token, sort=[Sort("occurred_at", "asc")], filters=filters), events),
            (CursorPagination(cursor=token, sort=[Sort("occurred_at", "desc", "last")], filters=filters), events),
            (CursorPagination(cursor=token, sort=sort, filters=[Filter("kind", "eq", "b")]), events),
            (CursorPagination(cursor=token, sort=sort), events),
            (CursorPagination(cursor=token, sort=sort, filters=filters), other),
        ]:  # fmt: skip
            with pytest.raises(CursorError) as caught:
                await fetch_cursor_page(conn, select(table), table, pagination, codec=CODEC)
            assert caught.value.reason == "wrong_sort"


async def test_bad_cursors_never_reach_the_database(engine: AsyncEngine) -> None:
    await _seed(engine, 5)
    spec = order_spec([Sort("score")])
    fingerprint = sort_fingerprint("keyset_events", spec)
    unsigned = CursorCodec()
    forged = [
        # The right fingerprint, values the columns cannot compare with.
        ({"score": "x", "id": uuid7()}, "malformed"),
        ({"score": True, "id": uuid7()}, "malformed"),
        ({"score": 2**80, "id": uuid7()}, "malformed"),
        ({"score": 1, "id": None}, "malformed"),
        ({"score": 1, "id": "not-a-uuid"}, "malformed"),
        ({"score": 1}, "malformed"),
        ({"score": 1, "id": uuid7(), "extra": 1}, "malformed"),
    ]
    async with engine.connect() as conn:
        for values, reason in forged:
            token = unsigned.encode(values, fingerprint=fingerprint)
            with pytest.raises(CursorError) as caught:
                await fetch_cursor_page(
                    conn, select(events), events, CursorPagination(cursor=token, sort=[Sort("score")]),
                    codec=unsigned,
                )  # fmt: skip
            assert caught.value.reason == reason, values
        naive = unsigned.encode(
            {"occurred_at": datetime(2024, 1, 1), "id": uuid7()},
            fingerprint=sort_fingerprint("keyset_events", order_spec([Sort("occurred_at")])),
        )
        with pytest.raises(CursorError, match="occurred_at"):
            await fetch_cursor_page(
                conn, select(events), events, CursorPagination(cursor=naive, sort=[Sort("occurred_at")]),
                codec=unsigned,
            )  # fmt: skip
        reference = base64.urlsafe_b64encode(b'{"id": "x"}').decode().rstrip("=")
        with pytest.raises(CursorError) as caught:
            await fetch_cursor_page(
                conn,
                select(events),
                events,
                CursorPagination(cursor=reference),
                codec=CursorCodec(),
            )
        assert caught.value.reason == "wrong_version"
        unsigned_token = unsigned.encode({"id": uuid7()}, fingerprint="x")
        with pytest.raises(CursorError) as caught:
            await _page(conn, CursorPagination(cursor=unsigned_token))
        assert caught.value.reason == "unsigned"


async def test_unknown_sort_column_and_limit_cap(engine: AsyncEngine) -> None:
    await _seed(engine, 12)
    async with engine.connect() as conn:
        with pytest.raises(InvalidQueryError, match="no such column"):
            await _page(conn, CursorPagination(sort=[Sort("nope")]))
        capped = await _page(conn, CursorPagination(limit=50), max_limit=5)
        assert len(capped.items) == 5
        assert capped.has_next


async def test_previous_cursor_of_second_page_returns_the_first(engine: AsyncEngine) -> None:
    await _seed(engine, 10)
    async with engine.connect() as conn:
        first = await _page(conn, CursorPagination(limit=4))
        second = await _page(conn, CursorPagination(limit=4, cursor=first.next_cursor))
        assert (first.has_previous, second.has_previous, second.has_next) == (False, True, True)
        back = await _page(conn, CursorPagination(limit=4, cursor=second.previous_cursor))
        assert [r["id"] for r in back.items] == [r["id"] for r in first.items]
        assert (back.has_previous, back.has_next) == (False, True)
        assert back.previous_cursor is None


async def test_works_on_an_orm_session_and_past_the_end(engine: AsyncEngine) -> None:
    await _seed(engine, 3)
    async with make_session_factory(engine)() as session:
        page = await fetch_cursor_page(
            session, select(events), events, CursorPagination(limit=3), codec=CODEC
        )
        assert len(page.items) == 3
        assert page.next_cursor is None
        # A cursor past the last row: an empty page that still leads back.
        last_id = page.items[-1]["id"]
        beyond = CODEC.encode(
            {"id": last_id}, fingerprint=sort_fingerprint("keyset_events", order_spec([]))
        )
        empty = await fetch_cursor_page(
            session, select(events), events, CursorPagination(limit=3, cursor=beyond), codec=CODEC
        )
        assert empty.items == []
        assert (empty.has_next, empty.has_previous) == (False, True)
        back = await fetch_cursor_page(
            session, select(events), events,
            CursorPagination(limit=3, cursor=empty.previous_cursor), codec=CODEC,
        )  # fmt: skip
        # The rows before the cursor's row (that row was the last one of the page before).
        assert [r["id"] for r in back.items] == [r["id"] for r in page.items[:2]]


def _sql(clause: Any) -> str:
    return str(clause.compile(dialect=postgresql.dialect()))


def test_the_leading_key_gets_a_range_bound() -> None:
    # Mixed directions: a range bound on the lead, then the OR expansion as a filter.
    spec = order_spec([Sort("occurred_at", "desc"), Sort("id", "asc")])
    (segment,) = keyset_segments([events.c.occurred_at, events.c.id], spec, [T0, uuid7()])
    sql = _sql(segment)
    assert sql.startswith("keyset_events.occurred_at <= ")
    assert "keyset_events.occurred_at < " in sql
    assert " OR " in sql
    # One direction throughout: a row-value comparison, one index condition.
    uniform = order_spec([Sort("occurred_at", "desc")])
    (segment,) = keyset_segments([events.c.occurred_at, events.c.id], uniform, [T0, uuid7()])
    assert _sql(segment).startswith("(keyset_events.occurred_at, keyset_events.id) < (")
    # A nullable leading key, NULLS LAST: its values and its NULLs are two index ranges.
    nullable = keyset_segments(
        [events.c.score, events.c.id], order_spec([Sort("score")]), [3, uuid7()]
    )
    assert _sql(nullable[0]).startswith("(keyset_events.score, keyset_events.id) > (")
    assert _sql(nullable[1]) == "keyset_events.score IS NULL"


@dataclass
class _Item:
    id: int
    name: str


def test_build_cursor_page_trims_and_refuses_missing_fields() -> None:
    items = [_Item(i, f"n{i}") for i in range(4)]
    page = build_cursor_page(items, limit=3, sort=[Sort("name")], codec=CODEC)
    assert page.items == items[:3]
    assert page.has_next
    assert CODEC.decode(page.next_cursor or "").values == {"name": "n2", "id": 2}
    mapping_page = build_cursor_page([{"id": 1}, {"id": 2}], limit=1, codec=CODEC)
    assert CODEC.decode(mapping_page.next_cursor or "").values == {"id": 1}
    with pytest.raises(InvalidQueryError, match="'missing' is missing on _Item"):
        build_cursor_page(items, limit=2, cursor_fields=["missing"], codec=CODEC)
    last = build_cursor_page(items, limit=10, codec=CODEC)
    assert (last.next_cursor, last.has_next) == (None, False)
