"""Values checked against a column's SQLAlchemy type before any statement is built.

One rule, one place: a filter value, a cursor value, an id handed to ``get`` and a value an
entity writes all pass :func:`check_value` (or the checker :func:`checker_for` returns for a
column), so a bad value is a :class:`~qxdb.errors.ValidationError` here, on both dialects
alike, and never a driver error (which on PostgreSQL would also leave the transaction
aborted) nor a silently different answer on SQLite.

The rule is "a value the column could hold":

==========================  =================================================================
column type                 accepted
==========================  =================================================================
``SmallInteger``            ``int`` (not ``bool``) in -2**15 .. 2**15-1
``Integer``                 ``int`` in -2**31 .. 2**31-1 (the declared type, also on SQLite)
``BigInteger``              ``int`` in -2**63 .. 2**63-1
``Float``                   finite ``int`` or ``float``
``Numeric(p, s)``           finite ``Decimal``, ``int`` or ``float`` (NaN, sNaN, infinities
                            refused) with at most ``p - s`` integer and ``s`` fraction digits;
                            without a precision, within ``±1e308`` (what SQLite can compare)
``String(n)``/``Text``      ``str`` of at most ``n`` characters, no NUL (PostgreSQL cannot
                            store it; SQLite cuts a LIKE pattern there), no lone surrogate
``Enum``                    one of the enum's values (or a member of its Python enum)
``Boolean``                 ``bool``
``Date``                    ``date`` that is not a ``datetime``
``DateTime``                ``datetime``; timezone-aware (and convertible to UTC) when the
                            column has a timezone, as ``UTCDateTime`` has; naive otherwise
``Uuid``                    ``UUID``, or its canonical text (returned as a ``UUID``)
``JSON``                    not comparable: refused (filter JSON with ``is_null`` only);
                            written: any JSON document (:func:`check_json`)
``LargeBinary``             ``bytes``
other                       an instance of the type's ``python_type`` when it has one
==========================  =================================================================

The checks are pure Python on the value; they run no SQL.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

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
    TypeDecorator,
    Uuid,
)
from sqlalchemy.sql.type_api import TypeEngine

from qxdb.errors import ValidationError

__all__ = [
    "Checker",
    "check_json",
    "check_text",
    "check_value",
    "checker_for",
    "comparable",
    "is_unicode",
    "write_checker_for",
]

Checker = Callable[[Any], Any]

_FLOAT_LIMIT = Decimal("1e308")


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, code="validation.value")


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not escape as its own error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    return type(value).__name__


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    # A TypeDecorator (UTCDateTime) is checked by what it stores; its own bind step then
    # sees only values its impl accepts.
    seen = 0
    while isinstance(type_, TypeDecorator) and seen < 8:
        impl = type_.impl_instance if hasattr(type_, "impl_instance") else type_.impl
        type_ = impl if isinstance(impl, TypeEngine) else impl()
        seen += 1
    return type_


def _integer(low: int, high: int, name: str) -> Checker:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _refuse(f"expected an integer ({name}), got {_kind(value)} {_short(value)}")
        if not low <= value <= high:
            raise _refuse(f"{_short(value)} is out of range for {name} ({low} .. {high})")
        return value

    return check


def _float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"expected a number, got {_kind(value)} {_short(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse(f"{value!r} is not a finite number")
    if isinstance(value, int) and abs(value) > 2**1023:
        raise _refuse(f"{_short(value)} is out of range for a float column")
    return value


def _numeric(precision: int | None, scale: int | None) -> Checker:
    whole_digits = None if precision is None else precision - (scale or 0)

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
            raise _refuse(f"expected a Decimal or a number, got {_kind(value)} {_short(value)}")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _refuse(f"{value!r} is not a finite number")
            number = Decimal(repr(value))
        elif isinstance(value, int):
            if abs(value) >= 10**400:  # before Decimal(): no giant conversion of a hostile int
                raise _refuse(f"{_short(value)} is out of range for a numeric column")
            number = Decimal(value)
        else:
            number = value
        if not number.is_finite():
            raise _refuse(f"{_short(value)} is not a finite number")
        if number.is_zero():
            return value
        if whole_digits is None:
            try:
                too_big = abs(number) >= _FLOAT_LIMIT
            except InvalidOperation:
                too_big = True
            if too_big:
                raise _refuse(f"{_short(value)} is out of range for a numeric column")
            if len(number.as_tuple().digits) > 1000:
                raise _refuse(f"{_short(value)} has more than 1000 digits")
            return value
        # adjusted(): the exponent of the leading digit, so 123.4 -> 2 (three whole digits).
        if number.adjusted() + 1 > whole_digits:
            raise _refuse(
                f"{_short(value)} does not fit NUMERIC({precision}, {scale or 0}): at most "
                f"{whole_digits} digits before the decimal point"
            )
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > (scale or 0):
            raise _refuse(
                f"{_short(value)} does not fit NUMERIC({precision}, {scale or 0}): at most "
                f"{scale or 0} digits after the decimal point"
            )
        return value

    return check


def is_unicode(text: str) -> bool:
    """Is ``text`` valid Unicode (no lone surrogate, as undecodable bytes from a command
    line or a file name become), so that UTF-8 can encode it?"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: Any, length: int | None = None) -> str:
    """``value`` if it is text a database column can hold (no NUL, no lone surrogate)."""
    if not isinstance(value, str):
        raise _refuse(f"expected a string, got {_kind(value)} {_short(value)}")
    if length is not None and len(value) > length:
        raise _refuse(f"the text is {len(value)} characters, over the column's {length}")
    if "\x00" in value:
        raise _refuse("the text contains a NUL character, which a database column cannot hold")
    if not is_unicode(value):
        raise _refuse("the text contains a lone surrogate, which is not valid Unicode")
    return value


def _string(length: int | None) -> Checker:
    def check(value: Any) -> Any:
        return check_text(value, length)

    return check


def _enum(type_: Enum) -> Checker:
    allowed = tuple(type_.enums)
    enum_class = type_.enum_class

    def check(value: Any) -> Any:
        if enum_class is not None and isinstance(value, enum.Enum):
            if isinstance(value, enum_class):
                return value
            raise _refuse(f"{_short(value)} is not a member of {enum_class.__name__}")
        if isinstance(value, str) and value in allowed:
            return enum_class[value] if enum_class is not None else value
        raise _refuse(f"{_short(value)} is not one of {list(allowed)}")

    return check


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _refuse(f"expected a boolean, got {_kind(value)} {_short(value)}")
    return value


def _date(value: Any) -> Any:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _refuse(f"expected a date (not a datetime), got {_kind(value)} {_short(value)}")
    return value


def _datetime(aware: bool) -> Checker:
    def check(value: Any) -> Any:
        if not isinstance(value, datetime):
            raise _refuse(f"expected a datetime, got {_kind(value)} {_short(value)}")
        try:
            offset = value.utcoffset()
        except Exception:  # a hostile tzinfo: whatever it raises, it is not a timezone
            raise _refuse(f"{_short(value)} has an unusable timezone") from None
        if aware:
            if offset is None:
                raise _refuse(
                    f"got the naive datetime {value.isoformat()}: give it a timezone (e.g. UTC)"
                )
            try:
                value.astimezone(UTC)
            except (OverflowError, ValueError):
                raise _refuse(
                    f"{value.isoformat()} is outside the range of UTC datetimes"
                ) from None
        elif offset is not None:
            raise _refuse(
                f"got the aware datetime {value.isoformat()} for a column without a time "
                "zone: pass a naive datetime"
            )
        return value

    return check


def _uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) == 36:
        try:
            parsed = UUID(value)
        except ValueError:
            pass
        else:
            if str(parsed) == value.lower():
                return parsed
    raise _refuse(f"expected a UUID, got {_kind(value)} {_short(value)}")


def _json(value: Any) -> Any:
    raise _refuse("a JSON column cannot be compared with a value (use is_null / is_not_null)")


_JSON_DEPTH = 64


def check_json(value: Any, _depth: int = 0) -> Any:
    """``value`` if a JSON column can store it on both dialects: JSON types only, finite
    numbers, text without NUL or lone surrogates (PostgreSQL's ``jsonb`` refuses both)."""
    if _depth > _JSON_DEPTH:
        raise _refuse(f"the JSON value is nested deeper than {_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _refuse(f"{value!r} cannot be stored as JSON")
        return value
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, list | tuple):
        for item in value:
            check_json(item, _depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _refuse(f"a JSON object key is a string, not {_kind(key)}")
            check_text(key)
            check_json(item, _depth + 1)
        return value
    raise _refuse(f"a {_kind(value)} cannot be stored as JSON")


def _bytes(value: Any) -> Any:
    if not isinstance(value, bytes):
        raise _refuse(f"expected bytes, got {_kind(value)} {_short(value)}")
    return value


def _instance_of(expected: type[Any]) -> Checker:
    def check(value: Any) -> Any:
        if not isinstance(value, expected):
            raise _refuse(f"expected a {expected.__name__}, got {_kind(value)} {_short(value)}")
        return value

    return check


def _accept(value: Any) -> Any:
    return value


def _build(type_: TypeEngine[Any]) -> Checker:
    base = _base_type(type_)
    if isinstance(base, Boolean):
        return _boolean
    if isinstance(base, Enum):
        return _enum(base)
    if isinstance(base, String):
        return _string(base.length)
    if isinstance(base, SmallInteger):
        return _integer(-(2**15), 2**15 - 1, "SmallInteger")
    if isinstance(base, BigInteger):
        return _integer(-(2**63), 2**63 - 1, "BigInteger")
    if isinstance(base, Integer):
        return _integer(-(2**31), 2**31 - 1, "Integer")
    if isinstance(base, Float):
        return _float
    if isinstance(base, Numeric):
        return _float if not base.asdecimal else _numeric(base.precision, base.scale)
    if isinstance(base, DateTime):
        return _datetime(bool(base.timezone))
    if isinstance(base, Date):
        return _date
    if isinstance(base, Uuid):
        return _uuid
    if isinstance(base, JSON):
        return _json
    if isinstance(base, LargeBinary):
        return _bytes
    try:
        expected = base.python_type
    except NotImplementedError:
        return _accept
    return _instance_of(expected)


_checkers: dict[int, tuple[TypeEngine[Any], Checker]] = {}


def checker_for(type_: TypeEngine[Any]) -> Checker:
    """The check of ``type_``: returns the value (normalised: a UUID's text becomes a
    ``UUID``) or raises :class:`~qxdb.errors.ValidationError`. Built once per type object."""
    key = id(type_)
    cached = _checkers.get(key)
    if cached is not None and cached[0] is type_:
        return cached[1]
    check = _build(type_)
    _checkers[key] = (type_, check)  # holding the type keeps its id from being reused
    return check


def write_checker_for(type_: TypeEngine[Any]) -> Checker:
    """The check of a value *written* to a column of ``type_``: as :func:`checker_for`,
    except that a JSON column takes any JSON document (:func:`check_json`)."""
    if isinstance(_base_type(type_), JSON):
        return check_json
    return checker_for(type_)


def check_value(type_: TypeEngine[Any], value: Any) -> Any:
    """``value`` checked (and normalised) for a column of ``type_``; never None-aware:
    callers decide whether NULL is allowed."""
    return checker_for(type_)(value)


def comparable(type_: TypeEngine[Any]) -> bool:
    """Whether values of the type can be compared in SQL alike on both dialects."""
    return not isinstance(_base_type(type_), JSON)
