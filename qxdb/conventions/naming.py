"""Names a naming convention gives to constraints, computed without SQLAlchemy's internals.

Supports the tokens of SQLAlchemy naming conventions: ``table_name``,
``referred_table_name``, ``constraint_name`` and ``[referred_]column_<i|0_N|0N>_<name|key|label>``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_IDENTIFIER_BYTES", "NamePattern", "expected_name", "truncated"]

MAX_IDENTIFIER_BYTES = 63
_TOKEN = re.compile(r"%\((\w+)\)s")
_KEEP = MAX_IDENTIFIER_BYTES - 8
_SHORTENED = re.compile(rf".{{{_KEEP}}}_[0-9a-f]{{4}}")
_COLUMN_TOKEN = re.compile(r"(referred_)?column_(0_N|0N|\d+)_(name|key|label)")


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A fully determined name, or a prefix/suffix around a free part."""

    exact: str | None = None
    prefix: str = ""
    suffix: str = ""

    def matches(self, name: str) -> bool:
        if self.exact is not None:
            return name == self.exact or name == truncated(self.exact)
        if _SHORTENED.fullmatch(name) and (self.prefix + self.suffix).startswith(name[:_KEEP]):
            return True  # an over-long name that SQLAlchemy shortened for PostgreSQL
        return (
            name.startswith(self.prefix)
            and name.endswith(self.suffix)
            and len(name) > len(self.prefix) + len(self.suffix)
        )

    def describe(self) -> str:
        return self.exact if self.exact is not None else f"{self.prefix}…{self.suffix}"


def truncated(name: str) -> str:
    """The name SQLAlchemy gives PostgreSQL for an over-long convention name."""
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
    return f"{name[:_KEEP]}_{digest[-4:]}"


def _columns(table: str, names: Sequence[str], selector: str, part: str) -> str:
    values = [f"{table}_{n}" if part == "label" else n for n in names]
    if selector == "0_N":
        return "_".join(values)
    if selector == "0N":
        return "".join(values)
    index = int(selector)
    return values[index] if index < len(values) else ""


def expected_name(
    template: str,
    *,
    table: str,
    columns: Sequence[str] = (),
    referred_table: str = "",
    referred_columns: Sequence[str] = (),
    free_after_columns: bool = False,
) -> NamePattern:
    """The name ``template`` gives; ``constraint_name`` (and, with ``free_after_columns``,
    the column part too) is left free, matching any text."""
    pieces: list[str] = []
    free_at: int | None = None
    pos = 0
    for match in _TOKEN.finditer(template):
        pieces.append(template[pos : match.start()])
        pos = match.end()
        token = match.group(1)
        column = _COLUMN_TOKEN.fullmatch(token)
        if token == "table_name":
            pieces.append(table)
        elif token == "referred_table_name":
            pieces.append(referred_table)
        elif column is not None and not (free_after_columns and not column.group(1)):
            referred = bool(column.group(1))
            pieces.append(
                _columns(
                    referred_table if referred else table,
                    referred_columns if referred else columns,
                    column.group(2),
                    column.group(3),
                )
            )
        else:
            # constraint_name, or a column part the caller leaves free.
            if free_at is None:
                free_at = len(pieces)
            pieces.append("\x00")
    pieces.append(template[pos:])
    text = "".join(pieces)
    if free_at is None:
        return NamePattern(exact=text)
    prefix, _, rest = text.partition("\x00")
    return NamePattern(prefix=prefix, suffix=rest.rpartition("\x00")[2])
