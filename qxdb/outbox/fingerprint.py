"""Failure fingerprints: delivery errors that differ only in ids, numbers or quoted values
fall in one group.

``last_error`` holds ``ErrorClass: message`` (the relay's form). Normalising replaces, in
this order:

=====================================  ===========  ===========================================
what                                   becomes      example
=====================================  ===========  ===========================================
a single-quoted value (a quote after   ``'?'``      ``'ord-17'`` -> ``'?'``
a letter or digit is an apostrophe)
a double-quoted value                  ``"?"``      ``"orders.placed"`` -> ``"?"``
a UUID                                 ``<uuid>``   ``0193a1b2-7c4d-…`` -> ``<uuid>``
a word holding a digit (numbers, hex   ``<n>``      ``42``, ``3.5``, ``ord_8f3a1``, ``v2`` ->
ids, ULIDs, versions)                               ``<n>``, ``<n>.<n>``, ``<n>``, ``<n>``
a run of whitespace                    one space
=====================================  ===========  ===========================================

The fingerprint is the first :data:`FINGERPRINT_LENGTH` hex digits of the MD5 of the
normalised text (not a security use: a short, stable name to type).

The rules are written once, here, as patterns that mean the same in Python's ``re`` and in
PostgreSQL's regular expressions (no alternation, no word boundaries, no backslash
escapes in the replacements; a negative lookbehind, which both have): :func:`normalise_error` applies them in Python (SQLite gets it
as a registered function), and :mod:`qxdb.outbox.triage` compiles the same list into nested
``regexp_replace`` calls, so PostgreSQL groups 100,000 rows without sending them over the
wire. A test runs a corpus of awkward messages through both and compares.

Standard library only: the command may import it without SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal, get_args

from qxdb.errors import ValidationError

__all__ = [
    "FAILURE_GROUPINGS",
    "FINGERPRINT_LENGTH",
    "NORMALISE_RULES",
    "FailureGrouping",
    "describe_error",
    "error_class",
    "error_fingerprint",
    "fingerprint_of_normalised",
    "normalise_error",
    "validate_fingerprint",
    "validate_grouping",
]

FailureGrouping = Literal["error", "event", "tenant"]
"""Failure groups by fingerprint alone, or by event name or tenant and fingerprint."""
FAILURE_GROUPINGS: tuple[str, ...] = get_args(FailureGrouping)

FINGERPRINT_LENGTH = 12

NORMALISE_RULES: tuple[tuple[str, str], ...] = (
    # A quote right after a letter or digit is an apostrophe (can't, users'), not the
    # start of a value: were it paired with the next quote, the value after it would
    # stay and split one class of error into a group per value.
    ("(?<![A-Za-z0-9])'[^']*'", "'?'"),
    ('"[^"]*"', '"?"'),
    (
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "<uuid>",
    ),
    # The first [..]* is greedy, so a match starts at the word's first character in both
    # engines (leftmost match; Python backtracks, PostgreSQL takes the longest).
    ("[A-Za-z0-9_]*[0-9][A-Za-z0-9_]*", "<n>"),
    ("[ \t\r\n]+", " "),
)
"""(pattern, replacement) pairs, applied in order to the whole text, every match."""

_COMPILED = tuple((re.compile(p), r) for p, r in NORMALISE_RULES)
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_HEX = re.compile(rf"[0-9a-f]{{{FINGERPRINT_LENGTH}}}")


def normalise_error(text: str | None) -> str:
    """``text`` with its varying parts replaced (see the module's table); None is ``""``."""
    out = text or ""
    for pattern, replacement in _COMPILED:
        out = pattern.sub(replacement, out)
    return out


def fingerprint_of_normalised(normalised: str) -> str:
    """The fingerprint of text that :func:`normalise_error` already normalised."""
    digest = hashlib.md5(normalised.encode("utf-8"), usedforsecurity=False).hexdigest()
    return digest[:FINGERPRINT_LENGTH]


def error_fingerprint(text: str | None) -> str:
    """The group a delivery error falls in: 12 hex digits, equal for errors that differ
    only in ids, numbers and quoted values."""
    return fingerprint_of_normalised(normalise_error(text))


def error_class(text: str | None) -> str | None:
    """The error's class name, from the raw (not normalised) text: the part before the
    first ``": "`` when it is a (dotted) Python name, as the relay writes it
    (``TimeoutError: …``), or the whole text when it is a class name alone (an exception
    without a message: ``TimeoutError``); else None."""
    head, sep, _ = (text or "").strip().partition(": ")
    if not _CLASS.fullmatch(head):
        return None
    # Alone, only a CapWords name reads as a class: "timeout" is a message.
    return head if sep or head.rpartition(".")[2][:1].isupper() else None


def describe_error(text: str | None) -> str:
    """The normalised error as shown to an operator: the class name kept as written
    (normalising would turn ``Http2Error`` into ``<n>``), the message normalised. The
    fingerprint is always of the whole :func:`normalise_error` text."""
    raw = (text or "").strip()
    cls = error_class(raw)
    if cls is None:
        return normalise_error(raw)
    rest = raw[len(cls) :].removeprefix(": ")
    return f"{cls}: {normalise_error(rest)}" if rest else cls


def validate_fingerprint(value: str) -> str:
    """``value`` as a fingerprint (trimmed, lower case), or a :class:`ValidationError`."""
    cleaned = value.strip().lower()
    if not _HEX.fullmatch(cleaned):
        raise ValidationError(
            f"invalid failure group {value!r}: expected the {FINGERPRINT_LENGTH} hex digits "
            "that 'qxdb outbox inspect --group-by error' prints"
        )
    return cleaned


def validate_grouping(value: str) -> FailureGrouping:
    """``value`` as a :data:`FailureGrouping`, or a :class:`ValidationError` naming the valid ones."""
    cleaned = value.strip().lower()
    if cleaned not in FAILURE_GROUPINGS:
        raise ValidationError(
            f"unknown grouping {value!r}: use one of {', '.join(FAILURE_GROUPINGS)}"
        )
    return cleaned  # type: ignore[return-value]
