"""Query shapes that travel from an API to a repository: filters, sorts, pages.

They are plain, validated value objects; the repository turns them into SQL after
checking every field against its allow-lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, get_args

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


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    op: FilterOp = "eq"
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in FILTER_OPS:
            raise ValueError(
                f"unknown filter operator {self.op!r}; expected one of {sorted(FILTER_OPS)}"
            )


@dataclass(frozen=True, slots=True)
class Sort:
    field: str
    direction: SortDirection = "asc"
    # Where NULLs go; by default as PostgreSQL does it: last ascending, first descending.
    nulls: NullsOrder | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("asc", "desc"):
            raise ValueError(f"sort direction must be 'asc' or 'desc', not {self.direction!r}")
        if self.nulls not in (None, "first", "last"):
            raise ValueError(f"nulls must be 'first', 'last' or None, not {self.nulls!r}")

    @property
    def effective_nulls(self) -> NullsOrder:
        if self.nulls is not None:
            return self.nulls
        return "last" if self.direction == "asc" else "first"


def _check_page_size(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_PAGE_SIZE}, got {value!r}")


@dataclass(frozen=True, slots=True)
class OffsetPagination:
    page: int = 1
    page_size: int = 50
    filters: Sequence[Filter] = ()
    sort: Sequence[Sort] = ()
    include_total: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.page, bool) or not isinstance(self.page, int) or self.page < 1:
            raise ValueError(f"page must be an integer >= 1, got {self.page!r}")
        _check_page_size(self.page_size, "page_size")

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
    limit: int = 50
    cursor: str | None = None
    filters: Sequence[Filter] = ()
    sort: Sequence[Sort] = ()

    def __post_init__(self) -> None:
        _check_page_size(self.limit, "limit")


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    previous_cursor: str | None = None
    has_next: bool = False
    has_previous: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


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
