"""Query shapes that travel from an API to a repository: filters, sorts, pages.

They are plain, validated value objects: every constructor refuses a bad argument with
:class:`~qxdb.errors.InvalidQueryError` (a bad cursor argument with
:class:`~qxdb.errors.CursorError`). The repository turns them into SQL after checking every
field against its allow-lists and every value against its column's type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

from qxdb.errors import CursorError, InvalidQueryError

__all__ = [
    "CursorPage",
    "CursorPagination",
    "Filter",
    "FilterOp",
    "OffsetPage",
    "OffsetPagination",
    "Sort",
    "SortDirection",
    "order_spec",
]

T = TypeVar("T")

FilterOp = Literal[
    "eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte",
    "contains", "starts_with", "ends_with", "is_null", "is_not_null",
]  # fmt: skip
FILTER_OPS: frozenset[str] = frozenset(get_args(FilterOp))
SortDirection = Literal["asc", "desc"]
NullsOrder = Literal["first", "last"]

MAX_PAGE_SIZE = 1000
# OFFSET is a 64-bit integer on both dialects: a page beyond it is refused, not overflowed.
MAX_OFFSET = 2**63 - 1


def _bad(message: str, **details: Any) -> InvalidQueryError:
    return InvalidQueryError(message, details=details)


def _check_field(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise _bad(f"a {what} field name is a string, not {type(value).__name__}")


def _materialise(value: Any, kind: type[Any], name: str) -> tuple[Any, ...]:
    """``value`` (a list, tuple or any iterable, e.g. a generator) as a tuple of ``kind``.

    Consumed exactly once, here: what the repository applies and what a cursor's
    fingerprint binds are then the same items.
    """
    if isinstance(value, (str | bytes | Mapping, kind)):
        raise _bad(f"{name} must be a list (or any iterable) of {kind.__name__}")
    try:
        items = tuple(value)
    except TypeError:
        raise _bad(f"{name} must be a list (or any iterable) of {kind.__name__}") from None
    for item in items:
        if not isinstance(item, kind):
            raise _bad(f"{name} holds a {type(item).__name__}, expected {kind.__name__}")
    return items


@dataclass(frozen=True, slots=True)
class Filter:
    """``field op value``. ``in`` / ``not_in`` take any iterable (kept as a tuple);
    ``is_null`` / ``is_not_null`` take no value. The value is checked against the column's
    type by the repository (:mod:`qxdb.values`) before any SQL is built."""

    field: str
    op: FilterOp = "eq"
    value: Any = None

    def __post_init__(self) -> None:
        _check_field(self.field, "filter")
        if not isinstance(self.op, str) or self.op not in FILTER_OPS:
            raise _bad(
                f"unknown filter operator {self.op!r}; expected one of {sorted(FILTER_OPS)}",
                field=self.field,
            )
        if self.op in ("in", "not_in"):
            value = self.value
            if isinstance(value, str | bytes | Mapping) or value is None:
                raise _bad(
                    f"filter {self.field!r} {self.op} needs a list, tuple or set of values, "
                    f"got {type(value).__name__}",
                    field=self.field,
                )
            if not isinstance(value, tuple):
                try:
                    object.__setattr__(self, "value", tuple(value))
                except TypeError:
                    raise _bad(
                        f"filter {self.field!r} {self.op} needs a list, tuple or set of "
                        f"values, got {type(value).__name__}",
                        field=self.field,
                    ) from None


@dataclass(frozen=True, slots=True)
class Sort:
    """One sort key. ``direction`` is ``"asc"`` or ``"desc"`` exactly (lower case, as the
    type says: an ``"ASC"`` from a query string is refused rather than guessed at)."""

    field: str
    direction: SortDirection = "asc"
    # Where NULLs go; by default as PostgreSQL does it: last ascending, first descending.
    nulls: NullsOrder | None = None

    def __post_init__(self) -> None:
        _check_field(self.field, "sort")
        if self.direction not in ("asc", "desc") or not isinstance(self.direction, str):
            hint = ""
            if isinstance(self.direction, str) and self.direction.lower() in ("asc", "desc"):
                hint = f" (write {self.direction.lower()!r})"
            raise _bad(
                f"sort direction must be 'asc' or 'desc', not {self.direction!r}{hint}",
                field=self.field,
            )
        if self.nulls is not None and (
            not isinstance(self.nulls, str) or self.nulls not in ("first", "last")
        ):
            raise _bad(
                f"nulls must be 'first', 'last' or None, not {self.nulls!r}", field=self.field
            )

    @property
    def effective_nulls(self) -> NullsOrder:
        if self.nulls is not None:
            return self.nulls
        return "last" if self.direction == "asc" else "first"


def _check_page_size(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise _bad(f"{name} must be an integer from 1 to {MAX_PAGE_SIZE}, got {value!r}")


def _check_flag(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise _bad(f"{name} must be True or False, got {value!r}")


@dataclass(frozen=True, slots=True)
class OffsetPagination:
    """A numbered page. ``include_total`` runs an exact ``COUNT`` (O(rows) on PostgreSQL),
    so it is off unless asked for; ``has_next`` is always known."""

    page: int = 1
    page_size: int = 50
    filters: Sequence[Filter] = ()
    sort: Sequence[Sort] = ()
    include_total: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
            raise _bad(f"page must be an integer >= 1, got {self.page!r}")
        _check_page_size(self.page_size, "page_size")
        if (self.page - 1) * self.page_size > MAX_OFFSET:
            raise _bad(f"page {self.page} is beyond the last possible page")
        _check_flag(self.include_total, "include_total")
        object.__setattr__(self, "filters", _materialise(self.filters, Filter, "filters"))
        object.__setattr__(self, "sort", _materialise(self.sort, Sort, "sort"))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True, slots=True)
class OffsetPage(Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int | None
    has_next: bool = False

    @property
    def pages(self) -> int | None:
        if self.total is None:
            return None
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True, slots=True)
class CursorPagination:
    """A keyset page. ``cursor`` None or ``""`` (an empty ``?cursor=``) is the first page."""

    limit: int = 50
    cursor: str | None = None
    filters: Sequence[Filter] = ()
    sort: Sequence[Sort] = ()

    def __post_init__(self) -> None:
        _check_page_size(self.limit, "limit")
        if self.cursor is not None and not isinstance(self.cursor, str):
            raise CursorError(
                "malformed", f"a cursor is a string, not {type(self.cursor).__name__}"
            )
        if self.cursor is not None and not self.cursor.strip():
            object.__setattr__(self, "cursor", None)
        object.__setattr__(self, "filters", _materialise(self.filters, Filter, "filters"))
        object.__setattr__(self, "sort", _materialise(self.sort, Sort, "sort"))


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    previous_cursor: str | None = None
    has_next: bool = False
    has_previous: bool = False


def order_spec(sort: Sequence[Sort], *, tiebreaker: str = "id") -> tuple[Sort, ...]:
    """The full ORDER BY of a listing: the requested sort, then the unique tiebreaker.

    The one policy that offset listings and keyset cursors share: the ``id`` tiebreaker
    takes the direction of the last requested key (ascending when there is none), and
    keys after ``id`` are dropped because ``id`` is unique. NULL placement is always
    explicit (:attr:`Sort.effective_nulls`), so SQLite and PostgreSQL order alike.
    """
    spec: list[Sort] = []
    for key in sort:
        if key.field == tiebreaker:
            spec.append(Sort(tiebreaker, key.direction, "last"))
            return tuple(spec)
        spec.append(key)
    direction: SortDirection = spec[-1].direction if spec else "asc"
    spec.append(Sort(tiebreaker, direction, "last"))
    return tuple(spec)
