"""Contracts of the repository's public entry points, on SQLite and PostgreSQL.

Hostile input (hypothesis-generated values of every type, edited cursors, forged tenants)
yields only ``qxdb.Error`` subclasses, never a driver error, and never leaves the
PostgreSQL transaction aborted: after each refused call the same session still runs a query.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    ConflictError,
    CursorError,
    CursorPagination,
    Error,
    Filter,
    InvalidQueryError,
    NotFoundError,
    OffsetPagination,
    Sort,
    TenantScopeError,
    ValidationError,
    request_scope,
    system_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.contract_models import FIELDS, Thing, ThingRepository, ensure_tables

TENANT, OTHER = uuid7(), uuid7()
OPS = [
    "eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte",
    "contains", "starts_with", "ends_with", "is_null", "is_not_null",
]  # fmt: skip

HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, -(2**31) - 1, 2**40, 2**63, -(2**63) - 1, 10**500]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [Decimal("1e999999"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("123456789012.5")]
    ),
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 41, "%_\\", "not-a-uuid", "abc"]),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14))])),
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
            datetime(1, 1, 1),
        ]
    ),
    st.uuids(),
    st.binary(max_size=8),
)
HOSTILE = st.one_of(
    HOSTILE_SCALARS,
    st.lists(HOSTILE_SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)


@pytest.fixture
async def session(engine: AsyncEngine, session_factory: SessionFactory) -> AsyncIterator[Any]:
    await ensure_tables(engine)
    async with session_factory() as s:
        yield s


async def _still_usable(session: AsyncSession) -> None:
    """The same session still answers: no aborted PostgreSQL transaction was left."""
    assert await ThingRepository(session).count() >= 0


HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HYPOTHESIS
@given(field=st.sampled_from([*FIELDS, "id", "nope", 5]), op=st.sampled_from(OPS), value=HOSTILE)
async def test_hostile_filters_are_qxdb_errors_or_answers(
    session: AsyncSession, field: Any, op: str, value: Any
) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        for call in (
            lambda: repo.list(OffsetPagination(filters=[Filter(field, op, value)])),  # type: ignore[arg-type]
            lambda: repo.list_cursor(CursorPagination(filters=[Filter(field, op, value)])),  # type: ignore[arg-type]
            lambda: repo.count([Filter(field, op, value)]),  # type: ignore[arg-type]
        ):
            with contextlib.suppress(Error):
                await call()
            await _still_usable(session)


@HYPOTHESIS
@given(value=HOSTILE)
async def test_hostile_ids_and_versions(session: AsyncSession, value: Any) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        calls = [
            lambda: repo.get(value),
            lambda: repo.exists(value),
            lambda: repo.soft_delete(value),
            lambda: repo.restore(value),
            lambda: repo.hard_delete(value),
            lambda: repo.soft_delete(uuid7(), expected_version=value),
        ]
        for call in calls:
            with contextlib.suppress(Error):
                await call()
            await _still_usable(session)


@HYPOTHESIS
@given(field=st.sampled_from(FIELDS), value=HOSTILE)
async def test_hostile_entity_values_on_add_and_save(
    session: AsyncSession, field: str, value: Any
) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        thing = Thing(code=f"c{uuid7().hex[-12:]}")
        setattr(thing, field, value)
        with contextlib.suppress(Error):
            await repo.add(thing)
        await _still_usable(session)
        stored = Thing(code=f"s{uuid7().hex[-12:]}")
        assert (await repo.add(stored)).is_success
        setattr(stored, field, value)
        with contextlib.suppress(Error):
            await repo.save(stored)
        await _still_usable(session)


@HYPOTHESIS
@given(
    page=st.one_of(st.integers(min_value=-5, max_value=2**64), st.just(2**62), HOSTILE),
    size=st.one_of(st.integers(min_value=-5, max_value=2000), HOSTILE),
)
async def test_hostile_pagination_numbers(session: AsyncSession, page: Any, size: Any) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        with contextlib.suppress(InvalidQueryError):
            await repo.list(OffsetPagination(page=page, page_size=size))
        with contextlib.suppress(InvalidQueryError):
            await repo.list_cursor(CursorPagination(limit=size))
        await _still_usable(session)


TAGGED_HOSTILE = st.one_of(
    st.sampled_from(
        [
            ["dt", "0001-01-01T00:00:00+14:00"],
            ["dt", "9999-12-31T23:59:59-14:00"],
            ["dt", "2024-01-01T00:00:00"],
            ["d", "2024-01-01"],
            ["n", "sNaN"],
            ["n", "1e999999"],
            ["f", "1e308"],
            ["u", "00000000-0000-0000-0000-00000000000g"],
            2**40,
            2**64,
            -(2**63) - 1,
            "\x00",
            "a\x00",
            "x" * 41,
            True,
            None,
            ["zz", "1"],
            [1, 2],
            {"a": 1},
        ]
    ),
    st.integers(),
    st.text(max_size=10),
)


def _edit(token: str, field: str, raw: Any) -> str:
    """Base64-decode an unsigned token, set one value, re-encode: what a client can do."""
    version, body = token.split(".")[:2]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["k"][field] = raw
    text = json.dumps(payload, separators=(",", ":"))
    return f"{version}.{base64.urlsafe_b64encode(text.encode()).decode().rstrip('=')}"


@HYPOTHESIS
@given(
    sort_field=st.sampled_from(["score", "at", "amount", "title", "day", "ref", "code"]),
    edited=st.sampled_from(["sort", "id"]),
    raw=TAGGED_HOSTILE,
)
async def test_edited_unsigned_cursors_are_cursor_errors(
    session: AsyncSession, sort_field: str, edited: str, raw: Any
) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        if await repo.count() < 3:
            for i in range(3):
                await repo.add(
                    Thing(
                        code=f"k{i}{uuid7().hex[-8:]}",
                        score=i,
                        at=datetime(2024, 1, 1 + i, tzinfo=UTC),
                        amount=Decimal(i),
                        title=f"t{i}",
                        day=date(2024, 1, 1 + i),
                        ref=uuid7(),
                    )
                )
        sort = [Sort(sort_field)]
        first = await repo.list_cursor(CursorPagination(limit=1, sort=sort))
        assert first.next_cursor is not None
        token = _edit(first.next_cursor, sort_field if edited == "sort" else "id", raw)
        with contextlib.suppress(CursorError):
            await repo.list_cursor(CursorPagination(limit=1, sort=sort, cursor=token))
        await _still_usable(session)


async def test_named_examples_of_the_issue_are_refused_before_sql(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        await repo.add(Thing(code="a", title="has text"))
        cases = [
            (Filter("score", "gt", "abc"), "score"),
            (Filter("title", "contains", "\x00"), "NUL"),
            (Filter("score", "eq", 2**40), "out of range"),
            (Filter("small", "eq", 2**15), "out of range"),
            (Filter("big", "eq", 2**63), "out of range"),
            (Filter("title", "eq", "\ud800"), "surrogate"),
            (Filter("amount", "eq", Decimal("1e999999")), "NUMERIC"),
            (Filter("amount", "eq", Decimal("sNaN")), "finite"),
            (Filter("amount", "eq", Decimal("0.001")), "after the decimal point"),
            (Filter("at", "gt", date(2024, 1, 1)), "datetime"),
            (Filter("at", "gt", datetime(2024, 1, 1)), "naive"),
            (Filter("day", "eq", datetime(2024, 1, 1)), "not a datetime"),
            (Filter("ref", "eq", "not-a-uuid"), "UUID"),
            (Filter("flag", "eq", 1), "boolean"),
            (Filter("ratio", "eq", float("nan")), "finite"),
            (Filter("data", "eq", "x"), "JSON"),
            (Filter("title", "eq", "x" * 41), "over the column's 40"),
        ]
        for flt, message in cases:
            with pytest.raises(InvalidQueryError, match=message) as info:
                await repo.list(OffsetPagination(filters=[flt]))
            assert info.value.details["field"] == flt.field
            assert repr(flt.field) in info.value.message
            await _still_usable(session)
        # Everything that is not a row of the table: SQLite used to return every row.
        assert (
            await repo.list(OffsetPagination(filters=[Filter("title", "contains", "zz")]))
        ).items == []
    with pytest.raises(InvalidQueryError, match="beyond the last possible page"):
        OffsetPagination(page=2**62)


async def test_in_lists_of_any_length(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        kept = [
            Thing(code=f"k{i}", score=i, ref=uuid7(), at=datetime(2024, 1, 1 + i, tzinfo=UTC))
            for i in range(3)
        ]
        assert (await repo.add_many(kept)).is_success
        many = list(range(100, 40_100))
        assert len(many) == 40_000
        found = await repo.list(OffsetPagination(filters=[Filter("score", "in", [*many, 1])]))
        assert [t.score for t in found.items] == [1]
        rest = await repo.list(
            OffsetPagination(filters=[Filter("score", "not_in", [*many, 1])], sort=[Sort("score")])
        )
        assert [t.score for t in rest.items] == [0, 2]
        refs = [uuid7() for _ in range(40_000)] + [kept[2].ref]
        by_ref = await repo.list(OffsetPagination(filters=[Filter("ref", "in", refs)]))
        assert [t.code for t in by_ref.items] == ["k2"]
        moments = [kept[0].at, datetime(2030, 1, 1, tzinfo=UTC)]
        by_at = await repo.count([Filter("at", "in", moments)])
        assert by_at == 1
        assert await repo.count([Filter("code", "in", (c for c in ["k0", "k1", "zz"]))]) == 2
        # Every member is stored as its column stores it (SQLite: UUID hex, datetime text,
        # booleans as integers, decimals as numbers) before it is compared.
        await repo.add(
            Thing(code="typed", flag=True, day=date(2024, 5, 1), amount=Decimal("2.50"), ratio=0.5)
        )
        for flt in (
            Filter("flag", "in", [True]),
            Filter("day", "in", [date(2024, 5, 1), date(2020, 1, 1)]),
            Filter("amount", "in", [Decimal("2.5"), Decimal("7")]),
            Filter("ratio", "in", [0.5]),
        ):
            assert [t.code for t in (await repo.list(OffsetPagination(filters=[flt]))).items] == [
                "typed"
            ], flt
        assert await repo.count([Filter("flag", "not_in", [True])]) == 0
        assert await repo.count([Filter("flag", "gt", False)]) == 1
        assert await repo.count([Filter("flag", "lte", False)]) == 0


async def test_forged_tenant_is_refused_on_every_write(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        thing = Thing(code="mine")
        await repo.add(thing)
        loaded = (await repo.get(thing.id)).value
        loaded.tenant_id = OTHER
        loaded.title = "moved?"
        for write in (repo.save, repo.soft_delete, repo.restore, repo.hard_delete):
            with pytest.raises(TenantScopeError) as info:
                await write(loaded)
            assert info.value.code == "tenant_scope.mismatch"
        await _still_usable(session)
        loaded.tenant_id = TENANT
        assert (await repo.soft_delete(loaded)).is_success
        assert (await repo.restore(loaded)).is_success
        # The entity's own tenant is fine, as is an id.
        assert (await repo.hard_delete(loaded)).is_success
    with system_scope():
        # Across tenants, explicitly: the entity's tenant is not a mismatch.
        other = Thing(code="theirs", tenant_id=OTHER)
        assert (await ThingRepository(session).add(other)).is_success
        assert (await ThingRepository(session).soft_delete(other)).is_success


async def test_duplicates_are_conflicts_that_reveal_nothing(session: AsyncSession) -> None:
    with request_scope(tenant_id=OTHER):
        theirs = Thing(code="their-code")
        await ThingRepository(session).add(theirs)
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        # Same id as another tenant's row.
        clash = Thing(code="fresh", id=theirs.id)
        failure = (await repo.add(clash)).error
        assert isinstance(failure, ConflictError)
        assert "tenant" not in failure.message.lower()
        assert str(OTHER) not in failure.message
        await _still_usable(session)
        # A unique value held by a soft-deleted row.
        gone = Thing(code="reused")
        await repo.add(gone)
        assert (await repo.soft_delete(gone.id)).is_success
        again = (await repo.add(Thing(code="reused"))).error
        assert isinstance(again, ConflictError)
        assert again.code == "thing.duplicate"
        await _still_usable(session)
        # add_many is all or none.
        batch = [Thing(code="b1"), Thing(code="reused")]
        assert isinstance((await repo.add_many(batch)).error, ConflictError)
        assert not await repo.exists(batch[0].id)
        # save onto a taken unique value; and restoring a row whose value was re-used.
        live = Thing(code="live")
        await repo.add(live)
        live.code = "their-code"
        assert isinstance((await repo.save(live)).error, ConflictError)
        await _still_usable(session)
        # The same repository too (it keeps its connection between calls: the savepoint
        # must still be taken).
        live.code = "live-renamed"
        assert (await repo.save(live)).is_success
        assert (await repo.get(live.id)).value.code == "live-renamed"
        # A value that is not a column's: refused before SQL.
        with pytest.raises(ValidationError, match="code cannot be None"):
            await repo.add(Thing(code=None))  # type: ignore[arg-type]
        await _still_usable(session)


async def test_count_and_default_listing_has_no_total(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        await repo.add_many([Thing(code=f"n{i}", score=i) for i in range(5)])
        page = await repo.list(OffsetPagination(page_size=2))
        assert (page.total, page.pages, page.has_next) == (None, None, True)
        assert (await repo.list(OffsetPagination(page_size=2, include_total=True))).total == 5
        assert await repo.count() == 5
        assert await repo.count([Filter("score", "gte", 3)]) == 2
        await repo.soft_delete(page.items[0].id)
        assert await repo.count() == 4
        assert await repo.count(include_deleted=True) == 5
    with request_scope(tenant_id=OTHER):
        assert await ThingRepository(session).count() == 0


async def test_filters_from_a_generator_bind_the_cursor(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        await repo.add_many([Thing(code=f"g{i}", score=i) for i in range(4)])
        filtered = await repo.list_cursor(
            CursorPagination(limit=1, filters=(f for f in [Filter("score", "gte", 1)]))
        )
        assert filtered.next_cursor is not None
        with pytest.raises(CursorError) as info:
            await repo.list_cursor(CursorPagination(limit=1, cursor=filtered.next_cursor))
        assert info.value.reason == "wrong_sort"
        follow = await repo.list_cursor(
            CursorPagination(
                limit=5, cursor=filtered.next_cursor, filters=[Filter("score", "gte", 1)]
            )
        )
        assert [t.score for t in follow.items] == [2, 3]
        # ?cursor= (empty) is the first page.
        empty = await repo.list_cursor(CursorPagination(limit=1, cursor=""))
        assert [t.code for t in empty.items] == [
            t.code for t in (await repo.list_cursor(CursorPagination(limit=1))).items
        ]


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_sort_key_of_4000_characters_pages_like_list(
    session: AsyncSession, direction: str
) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        bodies = ["b" * 3990 + f"{i % 4:010d}" for i in range(9)] + [None]
        await repo.add_many([Thing(code=f"L{i}", body=b) for i, b in enumerate(bodies)])
        sort = [Sort("body", direction)]  # type: ignore[arg-type]
        expected = [t.id for t in (await repo.list(OffsetPagination(sort=sort))).items]
        assert len(expected) == 10
        forward: list[Any] = []
        page = await repo.list_cursor(CursorPagination(limit=3, sort=sort))
        forward += [t.id for t in page.items]
        while page.next_cursor is not None:
            assert len(page.next_cursor) <= 4096
            page = await repo.list_cursor(
                CursorPagination(limit=3, sort=sort, cursor=page.next_cursor)
            )
            forward += [t.id for t in page.items]
        assert forward == expected
        backward = [t.id for t in page.items]
        while page.previous_cursor is not None:
            page = await repo.list_cursor(
                CursorPagination(limit=3, sort=sort, cursor=page.previous_cursor)
            )
            backward[:0] = [t.id for t in page.items]
        assert backward == expected
        # A by-row cursor whose row left the listing is a clear error, not a wrong page.
        start = await repo.list_cursor(CursorPagination(limit=1, sort=sort))
        assert start.next_cursor is not None
        if start.items[0].body is not None:
            await repo.hard_delete(start.items[0].id)
            with pytest.raises(CursorError) as info:
                await repo.list_cursor(
                    CursorPagination(limit=1, sort=sort, cursor=start.next_cursor)
                )
            assert info.value.reason == "stale"
        # The incoming cap still protects the server.
        with pytest.raises(CursorError) as too_big:
            await repo.list_cursor(CursorPagination(sort=sort, cursor="v1." + "A" * 5000))
        assert too_big.value.reason == "too_large"
        await _still_usable(session)


async def test_another_tenants_row_is_not_found_by_a_by_row_cursor(session: AsyncSession) -> None:
    with request_scope(tenant_id=OTHER):
        theirs = Thing(code="their", body="z" * 4000)
        await ThingRepository(session).add(theirs)
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        await repo.add_many([Thing(code=f"o{i}", body="y" * 4000 + str(i)) for i in range(3)])
        sort = [Sort("body")]
        page = await repo.list_cursor(CursorPagination(limit=1, sort=sort))
        assert page.next_cursor is not None
        assert ThingRepository.cursor_codec is not None
        decoded = ThingRepository.cursor_codec.decode(page.next_cursor)
        assert decoded.by_row
        forged = _edit(page.next_cursor, "id", ["u", str(theirs.id)])
        with pytest.raises(CursorError) as info:
            await repo.list_cursor(CursorPagination(limit=1, sort=sort, cursor=forged))
        assert info.value.reason == "stale"
        missing = (await repo.get(theirs.id)).error
        assert isinstance(missing, NotFoundError)


@dataclass(kw_only=True, eq=False)
class CheckedThing(Thing):
    def __post_init__(self) -> None:
        self.checked = True


class CheckedThingRepository(ThingRepository):
    entity_cls = CheckedThing


async def test_loaded_entities_are_whole_on_either_construction_path(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        plain, checked = ThingRepository(session), CheckedThingRepository(session)
        thing = Thing(code="whole", amount=Decimal("1.50"), at=datetime(2024, 1, 1, tzinfo=UTC))
        await plain.add(thing)
        # A plain dataclass is built from its row without __init__ (as imperative mapping
        # does); it is still a complete, equal, usable entity.
        loaded = (await plain.get(thing.id)).value
        assert loaded == thing and loaded is not thing
        assert (loaded.code, loaded.amount, loaded.at, loaded.version) == (
            "whole", Decimal("1.50"), datetime(2024, 1, 1, tzinfo=UTC), 1,
        )  # fmt: skip
        assert loaded.tenant_id == TENANT and not loaded.is_deleted
        # A class with __post_init__ goes through __init__, so its invariants hold.
        for entity in [
            (await checked.get(thing.id)).value,
            *(await checked.list(OffsetPagination())).items,
            *(await checked.list_cursor(CursorPagination())).items,
        ]:
            assert isinstance(entity, CheckedThing) and entity.checked


async def test_json_documents_are_written_and_bad_ones_refused(session: AsyncSession) -> None:
    with request_scope(tenant_id=TENANT):
        repo = ThingRepository(session)
        document = {"tags": ["a", "ü"], "n": 1, "x": 1.5, "ok": True, "none": None}
        thing = Thing(code="json", data=document)
        assert (await repo.add(thing)).is_success
        assert (await repo.get(thing.id)).value.data == document
        for bad in ({"a": float("nan")}, {"a": "\x00"}, {1: "int key"}, {"a": {1, 2}}, "\ud800"):
            with pytest.raises(ValidationError, match=r"Thing\.data"):
                await repo.add(Thing(code=f"j{uuid7().hex[-8:]}", data=bad))
            await _still_usable(session)
        # Filters cannot compare JSON; is_null can.
        with pytest.raises(InvalidQueryError, match="JSON"):
            await repo.count([Filter("data", "eq", "x")])
        assert await repo.count([Filter("data", "is_not_null")]) == 1
