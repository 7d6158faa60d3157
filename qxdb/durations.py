"""Strict parsing of the durations and instants operators type: ``30m``, ``7d``, ISO 8601.

Durations are one or more ``<whole number><unit>`` parts, largest unit first, with units
``s`` (seconds), ``m`` (minutes), ``h`` (hours), ``d`` (days) and ``w`` (weeks): ``90s``,
``30m``, ``1h30m``, ``7d``. Nothing else is guessed at: ``7``, ``7 days``, ``-1d``, ``1.5h``
and ``1m1h`` are refused with a :class:`~qxdb.errors.ValidationError` that says what a
valid value looks like.

Instants are ISO 8601 timestamps. A time of day must carry its offset (``Z`` or
``+02:00``), because a naive time read in the wrong zone silently selects the wrong rows;
a bare date (``2026-11-27``) means midnight UTC. :func:`parse_instant` also takes a
duration, meaning that long before *now* (``--since 2h``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from qxdb.errors import ValidationError

__all__ = [
    "ago",
    "format_duration",
    "parse_age",
    "parse_duration",
    "parse_instant",
    "parse_timestamp",
]

_UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
# [0-9], not \d: a duration is ASCII digits (a fullwidth or Arabic-Indic 7 is refused).
_PART = re.compile(r"([0-9]{1,9})([wdhms])")
_WHOLE = re.compile(r"(?:[0-9]{1,9}[wdhms])+")
_BARE_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DURATION_HINT = "a whole number and a unit (s, m, h, d, w), e.g. 30m, 7d or 1h30m"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``"30m"`` -> ``timedelta(minutes=30)``; anything unclear raises ``ValidationError``."""
    value = text.strip()
    if not _WHOLE.fullmatch(value):
        raise ValidationError(f"invalid {what} {text!r}: use {_DURATION_HINT}")
    parts = _PART.findall(value)
    units = [unit for _, unit in parts]
    order = list(_UNITS)
    if len(set(units)) != len(units) or units != sorted(units, key=order.index):
        raise ValidationError(
            f"invalid {what} {text!r}: give each unit once, largest first (e.g. 1h30m)"
        )
    try:
        return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in parts))
    except OverflowError:
        raise ValidationError(
            f"invalid {what} {text!r}: longer than Python can count ({timedelta.max.days} days)"
        ) from None


def ago(
    delta: timedelta,
    *,
    now: datetime | None = None,
    what: str = "duration",
    typed: str | None = None,
) -> datetime:
    """The instant ``delta`` before ``now``; a :class:`ValidationError` before year 1
    (quoting ``typed``, what the user wrote, when given)."""
    try:
        return (now or datetime.now(UTC)) - delta
    except OverflowError:
        shown = typed if typed is not None else format_duration(delta)
        raise ValidationError(f"invalid {what} {shown!r}: that reaches before year 1") from None


def parse_age(
    text: str, *, what: str = "age", now: datetime | None = None, positive: bool = False
) -> tuple[timedelta, datetime]:
    """An age as typed (``7d``) and the cutoff it makes (that long before ``now``), both
    checked before anything is done with them: a malformed age, one reaching before
    year 1 or (``positive``) a zero age is a :class:`ValidationError` quoting ``text``."""
    age = parse_duration(text, what=what)
    if positive and age <= timedelta(0):
        raise ValidationError(f"invalid {what} {text!r}: must be longer than zero")
    return age, ago(age, now=now, what=what, typed=text)


def parse_timestamp(text: str, *, what: str = "timestamp") -> datetime:
    """An ISO 8601 timestamp with an offset (or a bare date, midnight UTC), as aware UTC."""
    value = text.strip()
    if _BARE_DATE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"invalid {what} {text!r}: no such date") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"invalid {what} {text!r}: use ISO 8601, e.g. 2026-11-27T10:00:00Z or 2026-11-27"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(
            f"invalid {what} {text!r}: give the UTC offset, e.g. {value}Z or {value}+01:00"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            f"invalid {what} {text!r}: outside the years 1-9999 once converted to UTC"
        ) from None


def parse_instant(text: str, *, now: datetime | None = None, what: str = "time") -> datetime:
    """A timestamp, or a duration meaning that long before ``now`` (``2h`` = two hours ago)."""
    value = text.strip()
    if _WHOLE.fullmatch(value):
        return ago(parse_duration(value, what=what), now=now, what=what, typed=text)
    if value[:1].isdigit() and "-" not in value:
        # Looks like neither a date nor a valid duration ("7 days", "1.5h", "7"): say both.
        raise ValidationError(
            f"invalid {what} {text!r}: use an ISO 8601 timestamp "
            f"(e.g. 2026-11-27T10:00:00Z) or a duration ({_DURATION_HINT})"
        )
    return parse_timestamp(value, what=what)


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, rounded down to whole seconds: ``1h30m``."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
