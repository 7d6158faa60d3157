"""Failure fingerprints in SQL, so the database groups dead rows and picks a group's rows.

:func:`normalised_error` and :func:`error_fingerprint_sql` are SQL expressions over a
``last_error`` column that compute what :func:`qxdb.outbox.fingerprint.normalise_error` and
:func:`~qxdb.outbox.fingerprint.error_fingerprint` compute in Python, from the same rule
list:

- **PostgreSQL**: nested ``regexp_replace(…, 'g')``, one per rule, and ``md5``; the rows
  never leave the server.
- **SQLite**: calls of Python functions registered on the connection
  (:func:`register_sqlite_functions`; the store does it on every connection it uses), which
  run the Python rules themselves.

Any other dialect cannot compile them (a clear error rather than a wrong group).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from qxdb.outbox.fingerprint import (
    FINGERPRINT_LENGTH,
    NORMALISE_RULES,
    error_fingerprint,
    normalise_error,
)

__all__ = [
    "SQLITE_FINGERPRINT",
    "SQLITE_NORMALISE",
    "error_fingerprint_sql",
    "normalised_error",
    "register_sqlite_functions",
]

SQLITE_NORMALISE = "qxdb_normalise_error"
SQLITE_FINGERPRINT = "qxdb_error_fingerprint"


class _NormalisedError(FunctionElement[str]):
    type = String()
    name = "qxdb_normalised_error"
    inherit_cache = True


class _ErrorFingerprint(FunctionElement[str]):
    type = String()
    name = "qxdb_error_fingerprint"
    inherit_cache = True


def normalised_error(column: ColumnElement[Any]) -> ColumnElement[str]:
    """``last_error`` normalised (NULL as the empty text)."""
    return _NormalisedError(column)


def error_fingerprint_sql(column: ColumnElement[Any]) -> ColumnElement[str]:
    """The fingerprint of ``last_error``: 12 hex digits."""
    return _ErrorFingerprint(column)


def _pg_normalised(column: Any) -> Any:
    out: Any = func.coalesce(column, literal("", String()))
    for pattern, replacement in NORMALISE_RULES:
        # Patterns and replacements are our constants; still bound, never pasted.
        out = func.regexp_replace(
            out, literal(pattern, String()), literal(replacement, String()), literal("g")
        )
    return out


@compiles(_NormalisedError, "postgresql")
def _normalised_pg(element: _NormalisedError, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(_pg_normalised(column), **kw)


@compiles(_ErrorFingerprint, "postgresql")
def _fingerprint_pg(element: _ErrorFingerprint, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    expr = func.left(func.md5(_pg_normalised(column)), FINGERPRINT_LENGTH)
    return compiler.process(expr, **kw)


@compiles(_NormalisedError, "sqlite")
def _normalised_sqlite(element: _NormalisedError, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_NORMALISE}({compiler.process(element.clauses, **kw)})"


@compiles(_ErrorFingerprint, "sqlite")
def _fingerprint_sqlite(element: _ErrorFingerprint, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FINGERPRINT}({compiler.process(element.clauses, **kw)})"


@compiles(_NormalisedError)
@compiles(_ErrorFingerprint)
def _unsupported(element: Any, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(
        f"failure fingerprints are not available on {compiler.dialect.name}: "
        "PostgreSQL and SQLite only"
    )


async def register_sqlite_functions(driver_connection: Any) -> None:
    """Make the SQLite functions available on an aiosqlite connection (idempotent)."""
    await driver_connection.create_function(
        SQLITE_NORMALISE, 1, normalise_error, deterministic=True
    )
    await driver_connection.create_function(
        SQLITE_FINGERPRINT, 1, error_fingerprint, deterministic=True
    )
