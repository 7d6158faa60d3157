"""Is this failure "the database could not be reached" or "a statement failed"?

One answer for the library (:func:`qxdb.engine.connect_checked`, the migration runner)
and the command (exit code 3 or not), from the exception alone, without importing
SQLAlchemy or a driver: the cause chain is walked (SQLAlchemy's ``orig``, then
``__cause__`` / ``__context__``) and the first cause that can tell decides.

- A **SQLSTATE** (asyncpg's ``sqlstate``, psycopg's ``sqlstate``/``pgcode``) decides alone:
  class 08 (connection exception), 28 (invalid authorization), 3D (no such database),
  53300 (too many connections), 57P01-57P03 (shut down, cannot connect now) are
  "unreachable"; any other state is a statement that failed.
- An **SQLite** error decides by its result code: cannot open, not a database, no
  permission, authorisation refused are "unreachable"; anything else (no such table, a
  constraint, a syntax error, a busy database) is a statement that failed. SQLite raises
  ``OperationalError`` for both kinds, so the class alone must not decide.
- An ``OSError`` (refused, reset, DNS, TLS) or a timeout is "unreachable".
- A DB-API ``OperationalError`` of any other driver that carries no SQLSTATE (psycopg's
  "connection failed") is "unreachable", as is an error SQLAlchemy flagged as a
  disconnect (``connection_invalidated``).
"""

from __future__ import annotations

__all__ = [
    "LOCK_NOT_AVAILABLE",
    "UNAVAILABLE_SQLSTATES",
    "error_code_of",
    "is_lock_timeout",
    "is_unavailable",
    "sqlstate_of",
]

# lock_timeout ran out (PostgreSQL): the statement waited too long for a lock, nothing
# else is wrong; the callers that set a short lock_timeout retry on it.
LOCK_NOT_AVAILABLE = "55P03"

UNAVAILABLE_SQLSTATES: tuple[str, ...] = ("08", "28", "3D", "53300", "57P01", "57P02", "57P03")
# SQLite primary result codes (the low byte of an extended code).
_SQLITE_UNAVAILABLE = frozenset(
    {
        3,  # SQLITE_PERM
        14,  # SQLITE_CANTOPEN
        23,  # SQLITE_AUTH
        26,  # SQLITE_NOTADB
    }
)
_MAX_DEPTH = 12


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not c for c in chain) and len(chain) < _MAX_DEPTH:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )
    return chain


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE a driver attached to this exception (not its causes), if any."""
    for attr in ("sqlstate", "pgcode"):
        state = getattr(exc, attr, None)
        if isinstance(state, str) and state:
            return state
    return None


def error_code_of(exc: BaseException) -> str | None:
    """The SQLSTATE (PostgreSQL) or SQLite error name found along the cause chain, if any."""
    for cause in _causes(exc):
        state = sqlstate_of(cause)
        if state is not None:
            return state
        name = getattr(cause, "sqlite_errorname", None)
        if isinstance(name, str) and name:
            return name
    return None


def is_lock_timeout(exc: BaseException) -> bool:
    """True when ``exc`` (or a cause: SQLAlchemy wraps the driver's error) is a
    ``lock_timeout`` that ran out."""
    return error_code_of(exc) == LOCK_NOT_AVAILABLE


def _is_dbapi_operational(exc: BaseException) -> bool:
    # SQLAlchemy's own wrapper classes (sqlalchemy.exc.*) only say what the driver said:
    # the driver's exception is further down the chain and decides.
    module = type(exc).__module__ or ""
    return type(exc).__name__ == "OperationalError" and not module.startswith("sqlalchemy")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached or refused us."""
    chain = _causes(exc)
    for cause in chain:
        state = sqlstate_of(cause)
        if state is not None:
            return state.startswith(UNAVAILABLE_SQLSTATES)
        if type(cause).__module__ == "sqlite3":  # sqlite3.Error, without importing it
            code = getattr(cause, "sqlite_errorcode", None)
            return isinstance(code, int) and (code & 0xFF) in _SQLITE_UNAVAILABLE
        if isinstance(cause, OSError | TimeoutError):
            return True
        if _is_dbapi_operational(cause):
            return True
    return any(getattr(cause, "connection_invalidated", False) is True for cause in chain)
