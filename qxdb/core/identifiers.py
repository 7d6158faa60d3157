"""Plain SQL identifiers, ``schema.name``, and the names qxdb derives from the outbox's.

An identifier is letters, digits and underscores, not starting with a digit, at most 63
bytes (PostgreSQL's ``NAMEDATALEN - 1``; longer names are silently truncated, so two long
names could collide). The whole text must match: a trailing newline is not allowed.

The outbox table's name is also the stem of its index names and of its NOTIFY channel, so
it is shorter still: :data:`OUTBOX_NAME_MAX` leaves room for the longest derived name.
"""

from __future__ import annotations

import re

__all__ = [
    "IDENTIFIER_MAX",
    "OUTBOX_INDEX_SUFFIXES",
    "OUTBOX_NAME_MAX",
    "InvalidIdentifier",
    "outbox_index_name",
    "split_qualified",
    "validate_identifier",
    "validate_outbox_name",
]

IDENTIFIER_MAX = 63
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# Index names of the outbox table are ix_<name>_<suffix> (qxdb/outbox/table.py).
OUTBOX_INDEX_SUFFIXES = (
    "pending",
    "pending_key",
    "event_name",
    "occurred_at",
    "published_at",
    "dead_at",
)
# The longest name derived from the table's: its longest index name. The primary key
# (pk_<name> under make_metadata's convention) and the NOTIFY channel (<name>) are shorter.
OUTBOX_NAME_MAX = IDENTIFIER_MAX - max(len(f"ix__{s}") for s in OUTBOX_INDEX_SUFFIXES)


class InvalidIdentifier(ValueError):
    """Not a plain SQL identifier; callers turn it into their own qxdb error."""


def validate_identifier(
    name: object, *, what: str = "identifier", max_length: int = IDENTIFIER_MAX
) -> str:
    """Accept ``name`` or ``schema.name`` made of plain identifiers, else raise
    :class:`InvalidIdentifier` saying what is accepted."""
    if not isinstance(name, str):
        raise InvalidIdentifier(f"{what} must be a string, got {type(name).__name__}")
    parts = name.split(".")
    limits = [IDENTIFIER_MAX] * (len(parts) - 1) + [max_length]
    if len(parts) > 2 or not all(
        _IDENTIFIER.fullmatch(p) and len(p) <= limit for p, limit in zip(parts, limits, strict=True)
    ):
        raise InvalidIdentifier(
            f"{what} {name!r} is not a plain SQL identifier (letters, digits, underscores, "
            f"not starting with a digit; at most {max_length} characters; optionally "
            "schema.name)"
        )
    return name


def validate_outbox_name(name: object, *, what: str = "outbox table name") -> str:
    """An outbox table name whose every derived name fits PostgreSQL's 63 bytes."""
    return validate_identifier(name, what=what, max_length=OUTBOX_NAME_MAX)


def split_qualified(name: str) -> tuple[str | None, str]:
    """``"audit.events"`` -> ``("audit", "events")``; ``"events"`` -> ``(None, "events")``."""
    schema, _, bare = name.rpartition(".")
    return (schema or None), bare


def outbox_index_name(table_name: str, suffix: str) -> str:
    """The name of one of the outbox table's indexes (``suffix`` from the list above)."""
    if suffix not in OUTBOX_INDEX_SUFFIXES:
        raise ValueError(f"unknown outbox index suffix {suffix!r}")
    return f"ix_{table_name}_{suffix}"
