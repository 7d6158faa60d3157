"""Keyset pagination: WHERE and ORDER BY from one sort spec, cursors bound to their query.

The sort spec is :func:`qxdb.query.order_spec` of the requested sort: the keys, then the
unique ``id`` tiebreaker, each with an explicit NULL placement. From it come

- the ORDER BY (:func:`keyset_order_by`);
- the "strictly after this row" predicate (:func:`keyset_segments`), null-aware so no row
  is ever dropped, with a range bound on every key so PostgreSQL walks an index instead of
  filtering the table: ``a <= :a AND (a < :a OR (a = :a AND id > :id))`` (0.3 ms on a
  million rows where the bare OR expansion takes 166-249 ms);
- the cursor fingerprint (:func:`sort_fingerprint`), so a cursor is refused with reason
  ``wrong_sort`` under another sort, filter or resource.

A nullable leading key splits the rows after a cursor into two index ranges (its values,
its NULLs); they are queried one after the other, each as an index range, rather than
as one ``OR`` that no btree can serve in order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, bindparam, false, or_, tuple_
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.expression import FromClause

from qxdb.cursor import CursorCodec, CursorDirection, cursor_fingerprint
from qxdb.errors import CursorError, InvalidQueryError, ValidationError
from qxdb.query import MAX_PAGE_SIZE, CursorPage, CursorPagination, Filter, Sort, order_spec
from qxdb.values import checker_for

__all__ = [
    "build_cursor_page",
    "default_codec",
    "fetch_cursor_page",
    "keyset_order_by",
    "keyset_predicate",
    "keyset_rows",
    "keyset_segments",
    "reverse_spec",
    "sort_fingerprint",
    "validate_limit",
]


def reverse_spec(spec: Sequence[Sort]) -> tuple[Sort, ...]:
    """The exact reverse order: every direction and every NULL placement flipped."""
    return tuple(
        Sort(
            key.field,
            "desc" if key.direction == "asc" else "asc",
            "first" if key.effective_nulls == "last" else "last",
        )
        for key in spec
    )


def sort_fingerprint(resource: str, spec: Sequence[Sort], filters: Iterable[Filter] = ()) -> str:
    """The fingerprint a cursor carries: resource, full sort spec and filters."""
    filters = tuple(filters)
    if not filters and isinstance(spec, tuple):
        return _unfiltered_fingerprint(resource, spec)
    return _fingerprint(resource, spec, filters)


@lru_cache(maxsize=256)
def _unfiltered_fingerprint(resource: str, spec: tuple[Sort, ...]) -> str:
    # The common listing (no filters) hashes the same document on every page: once is enough.
    return _fingerprint(resource, spec, ())


def _fingerprint(resource: str, spec: Sequence[Sort], filters: Sequence[Filter]) -> str:
    return cursor_fingerprint(
        resource,
        [(key.field, key.direction, key.effective_nulls) for key in spec],
        [(f.field, f.op, f.value) for f in filters],
    )


def default_codec() -> CursorCodec:
    """The codec the service's settings describe: ``QX_DB__CURSOR_*`` from the environment
    *or* the ``.env`` file, as :class:`~qxdb.settings.DatabaseSettings` reads them.

    A secret kept only in ``.env`` must still sign cursors; an environment-only codec
    would silently hand out unsigned ones.
    """
    try:
        dotenv = Path(".env").stat().st_mtime_ns
    except OSError:
        dotenv = None
    cursor_env = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("QX_DB__CURSOR_"))
    )
    return _settings_codec(os.getcwd(), dotenv, cursor_env)


@lru_cache(maxsize=16)
def _settings_codec(
    _cwd: str, _dotenv: int | None, _env: tuple[tuple[str, str], ...]
) -> CursorCodec:
    # The arguments are only the cache key: settings are re-read when any of them changes.
    from qxdb.settings import DatabaseSettings

    return CursorCodec.from_settings(DatabaseSettings())


def validate_limit(limit: Any, max_limit: int = MAX_PAGE_SIZE) -> int:
    """``limit`` if it is an integer of at least 1, capped at ``max_limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidQueryError(f"limit must be an integer of at least 1, got {limit!r}")
    if max_limit < 1:
        raise ValueError("max_limit must be at least 1")
    return min(limit, max_limit)


def _nullable(column: ColumnElement[Any]) -> bool:
    return bool(getattr(column, "nullable", True))


def keyset_order_by(
    columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort]
) -> list[UnaryExpression[Any]]:
    """The ORDER BY of ``spec``, NULL placement explicit for every nullable column.

    A NOT NULL column gets no NULLS clause: it changes nothing there, and PostgreSQL only
    matches an index when the NULLS clause agrees with the index's own.
    """
    clauses: list[UnaryExpression[Any]] = []
    for column, key in zip(columns, spec, strict=True):
        clause = column.asc() if key.direction == "asc" else column.desc()
        if _nullable(column):
            clause = clause.nulls_first() if key.effective_nulls == "first" else clause.nulls_last()
        clauses.append(clause)
    return clauses


def _beyond(column: ColumnElement[Any], key: Sort, value: Any) -> ColumnElement[bool]:
    if key.direction == "asc":
        return column.__gt__(value)
    return column.__lt__(value)


def _at_or_beyond(column: ColumnElement[Any], key: Sort, value: Any) -> ColumnElement[bool]:
    if key.direction == "asc":
        return column.__ge__(value)
    return column.__le__(value)


def _after_from(
    columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort], values: Sequence[Any], i: int
) -> ColumnElement[bool]:
    """Rows strictly after the cursor, deciding on keys ``i..`` (keys before ``i`` equal).

    ``values`` are bound parameters, or None where the cursor's value is NULL.
    """
    if i == len(spec):
        return false()
    column, key, value = columns[i], spec[i], values[i]
    rest = _after_from(columns, spec, values, i + 1)
    if value is None:
        beyond: ColumnElement[bool] = (
            column.is_not(None) if key.effective_nulls == "first" else false()
        )
        return or_(beyond, and_(column.is_(None), rest))
    beyond = _beyond(column, key, value)
    if i == len(spec) - 1:
        return beyond  # the unique tiebreaker: nothing to break further
    bound = _at_or_beyond(column, key, value)
    if _nullable(column) and key.effective_nulls == "last":
        beyond = or_(beyond, column.is_(None))
        bound = or_(bound, column.is_(None))
    return and_(bound, or_(beyond, and_(column == value, rest)))


def _as_row_value(columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort]) -> bool:
    """Whether ``(a, b, id) > (:a, :b, :id)`` means "after" for the non-NULL lead values.

    True when every key runs the same direction and no key after the lead can be NULL:
    then the row comparison is exact, and it is one index condition for PostgreSQL and
    SQLite alike.
    """
    return all(k.direction == spec[0].direction for k in spec) and not any(
        _nullable(c) for c in columns[1:]
    )


def keyset_segments(
    columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort], values: Sequence[Any]
) -> list[ColumnElement[bool]]:
    """The rows strictly after ``values`` in ``spec`` order, as disjoint predicates in order.

    Each is one index range on the leading key (its non-NULL values from the cursor on, or
    its NULLs); together, in this order, they are exactly the rows after the cursor.
    """
    # One bound parameter per value, referenced wherever the value appears.
    binds = [
        None if value is None else bindparam(None, value, type_=column.type, unique=True)
        for column, value in zip(columns, values, strict=True)
    ]
    return _segments(columns, spec, binds)


_PARAM = "qx_keyset_{}"


@lru_cache(maxsize=512)
def _segment_template(
    columns: tuple[ColumnElement[Any], ...], spec: tuple[Sort, ...], nulls: tuple[bool, ...]
) -> tuple[ColumnElement[bool], ...]:
    """The segments for one shape of cursor, values left as named parameters.

    Built once per (columns, spec, which values are NULL): a page then costs no expression
    building, only the execution parameters.
    """
    binds = [
        None if is_null else bindparam(_PARAM.format(i), type_=column.type)
        for i, (column, is_null) in enumerate(zip(columns, nulls, strict=True))
    ]
    return tuple(_segments(columns, spec, binds))


def _segments(
    columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort], binds: Sequence[Any]
) -> list[ColumnElement[bool]]:
    lead, key, value = columns[0], spec[0], binds[0]
    if value is None:
        nulls = and_(lead.is_(None), _after_from(columns, spec, binds, 1))
        return [nulls, lead.is_not(None)] if key.effective_nulls == "first" else [nulls]
    in_values: ColumnElement[bool]
    if len(spec) == 1:
        in_values = _beyond(lead, key, value)
    elif _as_row_value(columns, spec):
        row, cursor_row = tuple_(*columns), tuple_(*binds)
        in_values = row > cursor_row if key.direction == "asc" else row < cursor_row
    else:
        in_values = and_(
            _at_or_beyond(lead, key, value),
            or_(
                _beyond(lead, key, value), and_(lead == value, _after_from(columns, spec, binds, 1))
            ),
        )
    if _nullable(lead) and key.effective_nulls == "last":
        return [in_values, lead.is_(None)]
    return [in_values]


def keyset_predicate(
    columns: Sequence[ColumnElement[Any]], spec: Sequence[Sort], values: Sequence[Any]
) -> ColumnElement[bool]:
    """One WHERE clause for the rows after ``values`` (the segments, ORed)."""
    return or_(*keyset_segments(columns, spec, values))


@dataclass(frozen=True, slots=True)
class _Position:
    values: tuple[Any, ...]
    direction: CursorDirection
    # The values are (the tiebreaker of) a row to look up, not the sort values themselves.
    by_row: bool = False


def _sort_columns(table: FromClause, spec: Sequence[Sort]) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = []
    for key in spec:
        try:
            columns.append(table.c[key.field])
        except KeyError:
            raise InvalidQueryError(
                f"cannot sort {_resource_name(table)} by {key.field!r}: no such column"
            ) from None
    return columns


def _resource_name(table: FromClause) -> str:
    return str(getattr(table, "fullname", None) or getattr(table, "name", None) or table)


def _check_value(column: ColumnElement[Any], field: str, value: Any) -> Any:
    """The value checked against the column's type (:mod:`qxdb.values`), as the filters are.

    An unsigned cursor can be edited by hand; whatever it says must be a value the column
    could hold before it reaches a statement.
    """
    if value is None:
        if not _nullable(column):
            raise CursorError("malformed", f"malformed cursor: {field} cannot be null")
        return None
    try:
        return checker_for(column.type)(value)
    except ValidationError as exc:
        raise CursorError("malformed", f"malformed cursor: {field}: {exc.message}") from None


def _read_cursor(
    codec: CursorCodec,
    token: str | None,
    fingerprint: str,
    spec: Sequence[Sort],
    columns: Sequence[ColumnElement[Any]],
) -> _Position | None:
    if token is None:
        return None
    decoded = codec.decode(token)
    if decoded.version == 0:
        raise CursorError(
            "wrong_version",
            "this cursor is in the unversioned reference format, which is not bound to a "
            "sort; start again from the first page",
        )
    if decoded.fingerprint != fingerprint:
        raise CursorError(
            "wrong_sort",
            "this cursor belongs to another sort, filter or resource; start again from the "
            "first page",
        )
    fields = [key.field for key in spec]
    if decoded.by_row:
        # The boundary values were too long to carry: the token names the boundary row by
        # its unique tiebreaker, and the page looks its values up.
        tiebreaker = fields[-1]
        if set(decoded.values) != {tiebreaker}:
            raise CursorError("malformed", "malformed cursor: it does not name a row")
        value = _check_value(columns[-1], tiebreaker, decoded.values[tiebreaker])
        if value is None:
            raise CursorError("malformed", "malformed cursor: it does not name a row")
        return _Position((value,), decoded.direction, by_row=True)
    if set(decoded.values) != set(fields):
        raise CursorError("malformed", "malformed cursor: its fields do not match the sort")
    values = tuple(
        _check_value(column, name, decoded.values[name])
        for column, name in zip(columns, fields, strict=True)
    )
    return _Position(values, decoded.direction)


_LIMIT = "qx_keyset_limit"


def _page_queries(
    stmt: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    walk: tuple[Sort, ...],
    nulls: tuple[bool, ...] | None,
) -> tuple[Select[Any], ...]:
    """The statements of one page shape, in order: one per index range after the cursor
    (see :func:`keyset_segments`), each ordered and limited by a bound parameter."""
    base = stmt.order_by(None).limit(None).offset(None).order_by(*keyset_order_by(columns, walk))
    limit = bindparam(_LIMIT, type_=BigInteger)
    if nulls is None:
        return (base.limit(limit),)
    segments = _segment_template(tuple(columns), walk, nulls)
    return tuple(base.where(segment).limit(limit) for segment in segments)


async def _boundary_values(
    executor: AsyncConnection | AsyncSession,
    stmt: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    position: _Position,
    params: Mapping[str, Any],
) -> _Position:
    """The sort values of the row a by-row cursor names, read through the listing's own
    statement (so its scope and filters apply: another tenant's row is not found)."""
    lookup = (
        stmt.with_only_columns(*columns)
        .order_by(None)
        .limit(None)
        .offset(None)
        .where(columns[-1] == position.values[0])
        .limit(1)
    )
    row = (await executor.execute(lookup, dict(params))).first()
    if row is None:
        raise CursorError(
            "stale",
            "the row this cursor points at is no longer in the listing (deleted or changed); "
            "start again from the first page",
        )
    return _Position(tuple(row), position.direction)


async def fetch_cursor_page(
    executor: AsyncConnection | AsyncSession,
    stmt: Select[Any],
    table: FromClause,
    pagination: CursorPagination,
    *,
    codec: CursorCodec | None = None,
    resource: str | None = None,
    max_limit: int = MAX_PAGE_SIZE,
    tiebreaker: str = "id",
) -> CursorPage[RowMapping]:
    """One page of ``stmt`` (a Core ``select`` over ``table``) by keyset.

    ``stmt`` carries the WHERE of ``pagination.filters`` (and any scoping) already: the
    filters enter the cursor's fingerprint here, they are not applied again. Its ORDER BY,
    LIMIT and OFFSET are replaced. It must select the sort columns of ``table``.

    Raises :class:`~qxdb.errors.CursorError` for a bad cursor (``wrong_sort`` when it was
    issued for another sort, filter or resource; ``stale`` when a by-row cursor's row has
    left the listing) and :class:`~qxdb.errors.InvalidQueryError` for an unknown sort
    column or a bad limit.
    """
    page = await keyset_rows(
        executor,
        stmt,
        table,
        pagination,
        codec=codec,
        resource=resource,
        max_limit=max_limit,
        tiebreaker=tiebreaker,
    )
    return CursorPage(
        items=[row._mapping for row in page.items],
        next_cursor=page.next_cursor,
        previous_cursor=page.previous_cursor,
        has_next=page.has_next,
        has_previous=page.has_previous,
    )


async def keyset_rows(
    executor: AsyncConnection | AsyncSession,
    stmt: Select[Any],
    table: FromClause,
    pagination: CursorPagination,
    *,
    codec: CursorCodec | None = None,
    resource: str | None = None,
    max_limit: int = MAX_PAGE_SIZE,
    tiebreaker: str = "id",
    params: Mapping[str, Any] | None = None,
    cache: dict[Any, Any] | None = None,
) -> CursorPage[Row[Any]]:
    """:func:`fetch_cursor_page` with the rows as SQLAlchemy ``Row`` tuples (no mapping
    view per row), for callers that build objects from positions, as the repository does.

    ``params`` are the values of ``stmt``'s own bound parameters. ``cache``, when given,
    keeps the page statements derived from ``stmt`` (one per direction and NULL shape of
    the cursor): pass a dict owned by ``stmt`` when ``stmt`` is itself built once, so a
    page costs no statement building at all.
    """
    limit = validate_limit(pagination.limit, max_limit)
    spec = order_spec(pagination.sort, tiebreaker=tiebreaker)
    return await _keyset_page(
        executor,
        stmt,
        table,
        limit,
        pagination.cursor,
        spec,
        pagination.filters,
        codec=codec,
        resource=resource,
        tiebreaker=tiebreaker,
        params=params,
        cache=cache,
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a page of one sort over one statement needs besides the cursor's values."""

    columns: tuple[ColumnElement[Any], ...]
    fields: tuple[str, ...]
    reverse: tuple[Sort, ...]
    # Where each sort column sits in the statement's rows (None: not selected as such).
    positions: tuple[int, ...] | None


def _shape(stmt: Select[Any], table: FromClause, spec: tuple[Sort, ...]) -> _Shape:
    columns = tuple(_sort_columns(table, spec))
    selected = list(stmt.selected_columns)
    positions: list[int] = []
    for column in columns:
        # By identity: == on a column builds an SQL expression.
        at = next((i for i, c in enumerate(selected) if c is column), None)
        if at is None:
            break
        positions.append(at)
    return _Shape(
        columns=columns,
        fields=tuple(key.field for key in spec),
        reverse=reverse_spec(spec),
        positions=tuple(positions) if len(positions) == len(columns) else None,
    )


async def _keyset_page(
    executor: AsyncConnection | AsyncSession,
    stmt: Select[Any],
    table: FromClause,
    limit: int,
    cursor: str | None,
    spec: tuple[Sort, ...],
    filters: Sequence[Filter],
    *,
    codec: CursorCodec | None,
    resource: str | None,
    tiebreaker: str,
    params: Mapping[str, Any] | None,
    cache: dict[Any, Any] | None,
) -> CursorPage[Row[Any]]:
    """:func:`keyset_rows` once the limit is checked and ``spec`` is the full
    :func:`~qxdb.query.order_spec` (the repository has both already)."""
    shape: _Shape | None = cache.get(("shape", spec)) if cache is not None else None
    if shape is None:
        shape = _shape(stmt, table, spec)
        if cache is not None:
            cache[("shape", spec)] = shape
    columns = shape.columns
    fingerprint = sort_fingerprint(resource or _resource_name(table), spec, filters)
    codec = codec or default_codec()
    given = dict(params or {})
    position = _read_cursor(codec, cursor, fingerprint, spec, columns)
    if position is not None and position.by_row:
        position = await _boundary_values(executor, stmt, columns, position, given)
    backwards = position is not None and position.direction == "previous"
    walk = shape.reverse if backwards else spec
    nulls = None if position is None else tuple(value is None for value in position.values)
    key = ("keyset", walk, nulls)
    queries = cache.get(key) if cache is not None else None
    if queries is None:
        queries = _page_queries(stmt, columns, walk, nulls)
        if cache is not None:
            cache[key] = queries
    values = given
    if position is not None:
        values.update({_PARAM.format(i): v for i, v in enumerate(position.values) if v is not None})
    rows: list[Row[Any]] = []
    for query in queries:
        values[_LIMIT] = limit + 1 - len(rows)
        result = await executor.execute(query, values)
        rows.extend(result.all())
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    fields = shape.fields

    def token(values: Sequence[Any], direction: CursorDirection) -> str:
        return codec.encode_position(
            dict(zip(fields, values, strict=True)),
            row_key=tiebreaker,
            fingerprint=fingerprint,
            direction=direction,
        )

    has_next = True if backwards else more
    has_previous = more if backwards else position is not None
    first = _row_values(rows[0], shape, spec) if rows else None
    last = _row_values(rows[-1], shape, spec) if rows else None
    if position is not None and not rows:
        # An empty page still knows where it is: the way back starts at the cursor itself.
        first = last = position.values
        has_next, has_previous = (True, False) if backwards else (False, True)
    return CursorPage(
        items=rows,
        next_cursor=token(last, "next") if has_next and last is not None else None,
        previous_cursor=token(first, "previous") if has_previous and first is not None else None,
        has_next=has_next,
        has_previous=has_previous,
    )


def _row_values(row: Row[Any], shape: _Shape, spec: Sequence[Sort]) -> tuple[Any, ...]:
    if shape.positions is not None:
        return tuple(row[i] for i in shape.positions)
    values: list[Any] = []
    for column, key in zip(shape.columns, spec, strict=True):
        try:
            values.append(row._mapping[column])
        except KeyError:
            raise InvalidQueryError(
                f"the statement does not select the sort column {key.field!r}"
            ) from None
    return tuple(values)


_MISSING = object()


def _item_values(item: Any, fields: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        value = (
            item.get(name, _MISSING) if isinstance(item, Mapping) else getattr(item, name, _MISSING)
        )
        if value is _MISSING:
            raise InvalidQueryError(
                f"cursor field {name!r} is missing on {type(item).__name__}; "
                "a cursor cannot point at a row it cannot locate"
            )
        values[name] = value
    return values


def build_cursor_page(
    items: Sequence[Any],
    *,
    limit: int,
    sort: Sequence[Sort] = (),
    cursor_fields: Sequence[str] | None = None,
    codec: CursorCodec | None = None,
    fingerprint: str | None = None,
    has_previous: bool = False,
) -> CursorPage[Any]:
    """A page from ``limit + 1`` fetched items: trim, and point ``next_cursor`` at the last.

    ``cursor_fields`` default to the fields of ``order_spec(sort)``. A field missing on the
    last item raises :class:`~qxdb.errors.InvalidQueryError` (never a silent NULL).
    """
    limit = validate_limit(limit, max_limit=sys.maxsize)
    has_next = len(items) > limit
    yielded = list(items[:limit])
    fields = (
        list(cursor_fields) if cursor_fields is not None else [k.field for k in order_spec(sort)]
    )
    next_cursor: str | None = None
    if has_next and yielded:
        next_cursor = (codec or default_codec()).encode(
            _item_values(yielded[-1], fields), fingerprint=fingerprint
        )
    return CursorPage(
        items=yielded, next_cursor=next_cursor, has_next=has_next, has_previous=has_previous
    )
