"""A filter oracle: every operator on random rows and values, against a Python evaluation.

Rows hold NULLs, unicode, ``%``, ``_`` and ``\\``; values also NUL and out-of-range numbers,
which must be refused (InvalidQueryError) before SQL. Whatever is not refused must select
exactly the rows the Python rules select, on SQLite and PostgreSQL alike:

- a NULL column matches only ``is_null`` (SQL's three-valued logic), except ``not_in []``,
  which matches every row, as ``NOT IN`` of an empty set does;
- ``contains`` / ``starts_with`` / ``ends_with`` are literal and case-insensitive for ASCII
  letters (the alphabet has no non-ASCII letter in two cases: their folding follows the
  PostgreSQL locale and is documented as such);
- text compares by code point (the test databases use the C.UTF-8 collation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import Filter, InvalidQueryError, OffsetPagination, request_scope, uuid7
from qxdb.engine import make_session_factory
from tests.integration.contract_models import Thing, ThingRepository, ensure_tables

TENANT = uuid7()
# Small alphabets, so that wildcards and case folding often decide whether a row matches.
ALPHABET = "aAb%_\\日ü"
TEXT = st.text(alphabet=ALPHABET, max_size=5)
VALUE_TEXT = st.text(alphabet="a%_\\\x00A日", max_size=3)
INT32 = 2**31

ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "title": st.one_of(st.none(), TEXT),
            "score": st.one_of(st.none(), st.integers(-3, 3)),
        }
    ),
    min_size=3,
    max_size=10,
)
INT_VALUE = st.one_of(st.integers(-4, 4), st.sampled_from([INT32, -INT32 - 1, 2**40]))
OPS = [
    "eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte",
    "contains", "starts_with", "ends_with", "is_null", "is_not_null",
]  # fmt: skip


def _fold(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _predicate(op: str, value: Any) -> Callable[[Any], bool]:
    """The Python meaning of one filter (column value -> selected?)."""
    if op == "is_null":
        return lambda v: v is None
    if op == "is_not_null":
        return lambda v: v is not None
    if op == "not_in" and len(value) == 0:
        return lambda v: True
    compare: dict[str, Callable[[Any], bool]] = {
        "eq": lambda v: v == value,
        "neq": lambda v: v != value,
        "gt": lambda v: v > value,
        "gte": lambda v: v >= value,
        "lt": lambda v: v < value,
        "lte": lambda v: v <= value,
        "in": lambda v: v in value,
        "not_in": lambda v: v not in value,
        "contains": lambda v: _fold(value) in _fold(v),
        "starts_with": lambda v: _fold(v).startswith(_fold(value)),
        "ends_with": lambda v: _fold(v).endswith(_fold(value)),
    }
    test = compare[op]
    return lambda v: v is not None and test(v)


def _refused(field: str, op: str, value: Any) -> bool:
    """Whether the value checks must refuse this filter (before any SQL)."""
    if op in ("is_null", "is_not_null"):
        return False
    members = value if op in ("in", "not_in") else [value]
    if field == "score":
        if op in ("contains", "starts_with", "ends_with"):
            return True
        return any(not -INT32 <= m < INT32 for m in members)
    return any("\x00" in m for m in members)


def _value(field: str, op: str) -> st.SearchStrategy[Any]:
    if op in ("is_null", "is_not_null"):
        return st.none()
    scalar = (
        INT_VALUE
        if field == "score" and op not in ("contains", "starts_with", "ends_with")
        else VALUE_TEXT
    )
    if field == "score" and op in ("contains", "starts_with", "ends_with"):
        scalar = VALUE_TEXT
    if op in ("in", "not_in"):
        return st.lists(scalar, max_size=4)
    return scalar


def _filter_for(op: str) -> st.SearchStrategy[tuple[str, str, Any]]:
    # LIKE operators mostly on the text column (where they mean something).
    fields = (
        ["title", "title", "title", "score"]
        if op in ("contains", "starts_with", "ends_with")
        else ["title", "score"]
    )
    return st.sampled_from(fields).flatmap(
        lambda field: st.tuples(st.just(field), st.just(op), _value(field, op))
    )


# Every example tries all 13 operators, each once, on the same rows.
FILTERS = st.tuples(*(_filter_for(op) for op in OPS))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=ROWS, filters=FILTERS)
async def test_every_operator_selects_what_python_selects(
    engine: AsyncEngine, rows: list[dict[str, Any]], filters: tuple[tuple[str, str, Any], ...]
) -> None:
    await ensure_tables(engine)
    tenant = uuid7()  # a fresh tenant per example: its rows are exactly these
    async with make_session_factory(engine)() as session:
        with request_scope(tenant_id=tenant):
            repo = ThingRepository(session)
            things = [Thing(code=uuid7().hex[-20:], **row) for row in rows]
            assert (await repo.add_many(things)).is_success
            for field, op, value in filters:
                flt = Filter(field, op, value)  # type: ignore[arg-type]
                if _refused(field, op, value):
                    with pytest.raises(InvalidQueryError) as info:
                        await repo.list(OffsetPagination(filters=[flt], page_size=100))
                    assert info.value.details["field"] == field
                    continue
                page = await repo.list(OffsetPagination(filters=[flt], page_size=100))
                got = sorted(t.code for t in page.items)
                keep = _predicate(op, value)
                expected = sorted(t.code for t in things if keep(getattr(t, field)))
                assert got == expected, (flt, [(getattr(t, field)) for t in things])
            await session.rollback()
