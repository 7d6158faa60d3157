"""Constructors of the query shapes and the column-type value checks, without a database.

Hostile arguments yield InvalidQueryError (CursorError for a non-string cursor), never a
plain ValueError/TypeError; the value checks answer per SQLAlchemy type.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
)

from qxdb import (
    CursorCodec,
    CursorError,
    CursorPagination,
    Error,
    Filter,
    InvalidQueryError,
    OffsetPagination,
    Sort,
    ValidationError,
)
from qxdb.types import UTCDateTime
from qxdb.values import check_value

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.builds(object),
    st.sampled_from(["ASC", "Desc", "like", "FIRST", "", " eq"]),
)


@settings(max_examples=200)
@given(field=ANYTHING, op=ANYTHING, value=ANYTHING)
def test_filter_constructor_raises_only_invalid_query(field: Any, op: Any, value: Any) -> None:
    with contextlib.suppress(InvalidQueryError):
        Filter(field, op, value)


@settings(max_examples=200)
@given(field=ANYTHING, direction=ANYTHING, nulls=ANYTHING)
def test_sort_constructor_raises_only_invalid_query(field: Any, direction: Any, nulls: Any) -> None:
    with contextlib.suppress(InvalidQueryError):
        Sort(field, direction, nulls)


@settings(max_examples=200)
@given(
    page=st.one_of(ANYTHING, st.integers(min_value=2**60)),
    size=ANYTHING,
    filters=ANYTHING,
    sort=ANYTHING,
    total=ANYTHING,
    cursor=ANYTHING,
)
def test_pagination_constructors_raise_only_qxdb_errors(
    page: Any, size: Any, filters: Any, sort: Any, total: Any, cursor: Any
) -> None:
    with contextlib.suppress(InvalidQueryError):
        OffsetPagination(page=page, page_size=size, filters=filters, sort=sort, include_total=total)
    with contextlib.suppress(InvalidQueryError, CursorError):
        CursorPagination(limit=size, cursor=cursor, filters=filters, sort=sort)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Filter("title", "like", "x"), "unknown filter operator"),  # type: ignore[arg-type]
        (lambda: Filter(5, "eq", "x"), "field name is a string"),  # type: ignore[arg-type]
        (lambda: Filter("title", "in", "abc"), "needs a list"),
        (lambda: Sort("title", "ASC"), "write 'asc'"),  # type: ignore[arg-type]
        (lambda: Sort("title", "up"), "'asc' or 'desc'"),  # type: ignore[arg-type]
        (lambda: Sort("title", "asc", "middle"), "nulls"),  # type: ignore[arg-type]
        (lambda: OffsetPagination(page=0), "page must be"),
        (lambda: OffsetPagination(page_size=1001), "page_size"),
        (lambda: OffsetPagination(page=2**62), "beyond the last possible page"),
        (lambda: OffsetPagination(include_total="yes"), "include_total"),  # type: ignore[arg-type]
        (lambda: OffsetPagination(filters=Filter("a")), r"iterable\) of Filter"),  # type: ignore[arg-type]
        (lambda: OffsetPagination(sort=["title"]), "expected Sort"),  # type: ignore[list-item]
        (lambda: CursorPagination(limit=0), "limit"),
    ],
)
def test_named_constructor_errors(build: Any, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        build()


def test_defaults_users_get() -> None:
    assert OffsetPagination().include_total is False
    assert CursorPagination(cursor="").cursor is None
    assert CursorPagination(cursor="  ").cursor is None
    with pytest.raises(CursorError):
        CursorPagination(cursor=5)  # type: ignore[arg-type]
    # Any iterable, consumed once into a tuple: what is applied is what a cursor binds.
    filters = CursorPagination(filters=(f for f in [Filter("a", "eq", 1)])).filters
    assert filters == (Filter("a", "eq", 1),)
    assert Filter("a", "in", (x for x in [1, 2])).value == (1, 2)


AWARE = datetime(2024, 1, 1, tzinfo=UTC)
CASES: list[tuple[Any, Any, bool]] = [
    (SmallInteger(), 2**15 - 1, True),
    (SmallInteger(), 2**15, False),
    (Integer(), 2**31 - 1, True),
    (Integer(), 2**31, False),
    (Integer(), -(2**31), True),
    (Integer(), True, False),
    (Integer(), "5", False),
    (Integer(), 5.0, False),
    (BigInteger(), 2**63 - 1, True),
    (BigInteger(), 2**63, False),
    (Float(), 1.5, True),
    (Float(), float("inf"), False),
    (Float(), float("nan"), False),
    (Numeric(12, 2), Decimal("9999999999.99"), True),
    (Numeric(12, 2), Decimal("99999999999"), False),
    (Numeric(12, 2), Decimal("1.005"), False),
    (Numeric(12, 2), Decimal("1.50"), True),
    (Numeric(12, 2), Decimal("sNaN"), False),
    (Numeric(12, 2), Decimal("NaN"), False),
    (Numeric(12, 2), Decimal("1e999999"), False),
    (Numeric(12, 2), 3, True),
    (Numeric(), Decimal("1e400"), False),
    (Numeric(), Decimal("1e300"), True),
    (Numeric(), 10**1000, False),
    (String(3), "abc", True),
    (String(3), "abcd", False),
    (Text(), "a\x00b", False),
    (Text(), "\ud800", False),
    (Text(), "日本 ü", True),
    (Text(), b"bytes", False),
    (Enum("red", "blue", name="colour"), "red", True),
    (Enum("red", "blue", name="colour"), "green", False),
    (Boolean(), True, True),
    (Boolean(), 1, False),
    (Date(), date(2024, 1, 1), True),
    (Date(), datetime(2024, 1, 1), False),
    (DateTime(), datetime(2024, 1, 1), True),
    (DateTime(), AWARE, False),
    (DateTime(timezone=True), AWARE, True),
    (DateTime(timezone=True), datetime(2024, 1, 1), False),
    (UTCDateTime(), AWARE, True),
    (UTCDateTime(), date(2024, 1, 1), False),
    (UTCDateTime(), datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), False),
    (UTCDateTime(), datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))), False),
    (Uuid(), UUID(int=5), True),
    (Uuid(), "00000000-0000-0000-0000-000000000005", True),
    (Uuid(), "not-a-uuid", False),
    (Uuid(), "{00000000-0000-0000-0000-000000000005}", False),
    (JSON(), {"a": 1}, False),
    (LargeBinary(), b"x", True),
    (LargeBinary(), "x", False),
]


@pytest.mark.parametrize(("type_", "value", "ok"), CASES)
def test_value_checks_follow_the_column_type(type_: Any, value: Any, ok: bool) -> None:
    if ok:
        checked = check_value(type_, value)
        assert checked == (
            UUID(value) if isinstance(value, str) and isinstance(type_, Uuid) else value
        )
    else:
        with pytest.raises(ValidationError):
            check_value(type_, value)


@settings(max_examples=300)
@given(
    type_=st.sampled_from([t for t, _, _ in CASES]),
    value=st.one_of(ANYTHING, st.decimals(), st.datetimes(), st.dates(), st.uuids()),
)
def test_value_checks_raise_only_validation_errors(type_: Any, value: Any) -> None:
    with contextlib.suppress(ValidationError):
        check_value(type_, value)


@settings(max_examples=300)
@given(token=st.one_of(st.text(max_size=60), st.binary(max_size=40), ANYTHING))
def test_codec_decode_raises_only_cursor_errors(token: Any) -> None:
    for codec in (CursorCodec(), CursorCodec(secret="k")):
        try:
            codec.decode(token)
        except CursorError:
            pass
        except Error as exc:  # pragma: no cover - a failure message, not a path
            raise AssertionError(f"not a CursorError: {exc!r}") from exc


def test_long_positions_fall_back_to_the_row() -> None:
    codec = CursorCodec(secret="k")
    row = UUID(int=7)
    short = codec.decode(codec.encode_position({"t": "x", "id": row}, row_key="id"))
    assert (short.by_row, short.values) == (False, {"t": "x", "id": row})
    token = codec.encode_position({"t": "x" * 4000, "id": row}, row_key="id")
    assert len(token) <= 4096
    long = codec.decode(token)
    assert (long.by_row, long.values) == (True, {"id": row})
    with pytest.raises(ValueError, match="over the cap"):
        codec.encode({"t": "x" * 4000, "id": row})
