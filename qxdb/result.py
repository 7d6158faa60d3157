"""``Result[T]``: a success value or an :class:`~qxdb.errors.Error`, never both.

Expected outcomes (not found, version conflict) are results, so callers see them in the
type; programming errors raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypeVar, cast, final, overload

from qxdb.errors import Error

__all__ = ["Result"]

T = TypeVar("T")
U = TypeVar("U")

_MISSING: Any = object()


@final
class Result(Generic[T]):
    __slots__ = ("_error", "_value")

    def __init__(self, value: T = _MISSING, error: Error | None = None) -> None:
        if (value is _MISSING) == (error is None):
            raise TypeError(
                "Result holds exactly one of a value or an error; use Result.success/failure"
            )
        self._value = value
        self._error = error

    @classmethod
    def success(cls, value: T) -> Result[T]:
        return cls(value)

    @classmethod
    def failure(cls, error: Error) -> Result[T]:
        if not isinstance(error, Error):
            raise TypeError(f"Result.failure takes a qxdb Error, got {type(error).__name__}")
        return cls(error=error)

    @classmethod
    def from_optional(cls, value: T | None, on_none: Error) -> Result[T]:
        return cls.failure(on_none) if value is None else cls(value)

    @property
    def is_success(self) -> bool:
        return self._error is None

    @property
    def is_failure(self) -> bool:
        return self._error is not None

    @property
    def value(self) -> T:
        """The success value; raises the error itself when this is a failure."""
        if self._error is not None:
            raise self._error
        return self._value

    @property
    def error(self) -> Error | None:
        return self._error

    def map(self, fn: Callable[[T], U]) -> Result[U]:
        if self._error is not None:
            return cast("Result[U]", self)
        return Result(fn(self._value))

    def bind(self, fn: Callable[[T], Result[U]]) -> Result[U]:
        if self._error is not None:
            return cast("Result[U]", self)
        return fn(self._value)

    def unwrap_or(self, default: U) -> T | U:
        return default if self._error is not None else self._value

    @overload
    def unwrap_or_raise(self) -> T: ...
    @overload
    def unwrap_or_raise(self, exc_factory: Callable[[Error], BaseException]) -> T: ...
    def unwrap_or_raise(self, exc_factory: Callable[[Error], BaseException] | None = None) -> T:
        if self._error is None:
            return self._value
        if exc_factory is None:
            raise self._error
        raise exc_factory(self._error) from self._error

    def match(self, on_success: Callable[[T], U], on_failure: Callable[[Error], U]) -> U:
        if self._error is not None:
            return on_failure(self._error)
        return on_success(self._value)

    def __bool__(self) -> NoReturn:
        # `if result:` reads like a success check and is a classic bug; make it explicit.
        raise TypeError("use result.is_success / result.is_failure")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and (self._value, self._error) == (
            other._value,
            other._error,
        )

    __hash__ = None  # type: ignore[assignment]  # holds arbitrary values; equality only

    def __repr__(self) -> str:
        if self._error is not None:
            return f"Result.failure({self._error!r})"
        return f"Result.success({self._value!r})"
