"""The error tree of qxdb.

Every error qxdb produces is an :class:`Error`: a code a program can branch on, a message
a person can read, and details for logs. Expected outcomes travel inside a ``Result`` as
its failure value; the same classes are raised for bad arguments and for environmental
failures, so one ``except Error`` catches everything qxdb means to say::

    Exception
     └── Error                            code, message, details
          ├── NotFoundError               no such row (or another tenant's row)
          ├── ConflictError               optimistic-concurrency version mismatch, duplicate
          ├── ValidationError             bad input (also a ValueError)              exit 2
          │    ├── CursorError            a bad cursor token, with a ``reason``       exit 2
          │    └── InvalidQueryError      unlisted filter/sort field, bad operator    exit 2
          ├── ConfigurationError          bad settings, URL, import path, config file exit 2
          │                               (also a ValueError)
          ├── TenantScopeError            tenanted access with no (or another) tenant
          ├── UnitOfWorkStateError        a call the unit of work's state cannot take
          │                               (also a RuntimeError), with its ``state``
          ├── DispatchLoopError           event handlers kept recording events
          ├── MigrationError              a migration ran and failed                 exit 1
          │    └── RevisionFailedError    one revision failed: ``failure`` says where
          ├── DatabaseUnavailableError    the database could not be reached          exit 3
          │    └── MigrationLockTimeoutError  another migration held the lock        exit 3
          └── BrokerUnavailableError      the message broker could not be reached    exit 3

Any other exception that reaches the command is a bug: it exits 70 (EX_SOFTWARE) with a
one-line hint to re-run with ``--debug``.

The command maps these classes to exit codes in one place (``qxdb_cli.errors``). Messages
never contain a password: build them with :func:`qxdb.urls.display_url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qxdb.migrations.failure import MigrationFailure

__all__ = [
    "BrokerUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "CursorError",
    "DatabaseUnavailableError",
    "DispatchLoopError",
    "Error",
    "InvalidQueryError",
    "MigrationError",
    "MigrationLockTimeoutError",
    "NotFoundError",
    "RevisionFailedError",
    "TenantScopeError",
    "UnitOfWorkStateError",
    "ValidationError",
]


class Error(Exception):
    """Base of every qxdb error: ``code`` for programs, ``message`` for people."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, Error)
            and (self.code, self.message, self.details)
            == (other.code, other.message, other.details)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }


class NotFoundError(Error):
    default_code = "not_found"


class ConflictError(Error):
    default_code = "conflict"


class ValidationError(Error, ValueError):
    default_code = "validation"


class InvalidQueryError(ValidationError):
    """An unlisted filter or sort field, or an operator that does not fit its value."""

    default_code = "invalid_query"


class CursorError(ValidationError):
    """A cursor token that cannot be used; ``reason`` says why, for programs.

    Reasons: ``malformed``, ``tampered``, ``expired``, ``wrong_version``, ``wrong_sort``,
    ``too_large``, ``unsigned`` (a secret is configured and the token carries no signature),
    ``stale`` (a by-row cursor whose boundary row has left the listing). A decoded value
    that does not fit its column is ``malformed``.
    """

    default_code = "cursor_invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, code=f"cursor.{reason}", details={"reason": reason})
        self.reason = reason


class ConfigurationError(Error, ValueError):
    """A setting, URL, name or argument that configures qxdb cannot be used."""

    default_code = "configuration"


class TenantScopeError(Error):
    """A tenanted repository was used with no tenant and no explicit system scope."""

    default_code = "tenant_scope"


class DatabaseUnavailableError(Error):
    default_code = "database_unavailable"


class BrokerUnavailableError(Error):
    default_code = "broker_unavailable"


class MigrationLockTimeoutError(DatabaseUnavailableError):
    """Another migration held the lock for longer than we were allowed to wait."""

    default_code = "migration_lock_timeout"


class MigrationError(Error):
    """A migration ran and failed, or the database is not in a state the command needs.

    When a revision failed, ``failure`` says which, with what statement and database error,
    and the state it left (also in ``details``, for ``--json``).
    """

    default_code = "migration"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        failure: MigrationFailure | None = None,
    ) -> None:
        if failure is not None:
            details = {**(details or {}), "failure": failure.to_dict()}
        super().__init__(message, code=code, details=details)
        self.failure = failure


class RevisionFailedError(MigrationError):
    """A revision failed while it ran.

    ``failure`` names it, with the statement, the database error and the state it left;
    ``details["failure"]`` carries the same for ``--json``. The message is
    :meth:`MigrationFailure.sentence`.
    """

    default_code = "migration.revision_failed"

    def __init__(self, failure: MigrationFailure) -> None:
        super().__init__(failure.sentence(), failure=failure)


class DispatchLoopError(Error):
    """Handlers kept recording events beyond the unit of work's bound."""

    default_code = "uow.dispatch_loop"


class UnitOfWorkStateError(Error, RuntimeError):
    """A call the unit of work cannot take in its current ``state``.

    States: ``open`` and ``committing`` (event handlers running) can write; ``committed``,
    ``rolled_back``, ``failed`` and ``closed`` cannot, so a repository call, ``commit()`` or
    ``track()`` there raises this error instead of writing nothing. ``state`` is
    ``"none"`` when no unit of work is open in the calling task. Also raised (code
    ``uow.nested``) when a task enters a unit of work it is already inside. See
    docs/repository.md.
    """

    default_code = "uow.state"

    def __init__(self, state: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code or f"uow.{state}", details={"state": state})
        self.state = state
