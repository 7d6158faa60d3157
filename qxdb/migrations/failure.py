"""What a failed migration says: the revision, the statement, the database error, the state.

A :class:`StepTracker` listens on the migration connection while Alembic runs: it knows
which revision is running (the runner feeds it each step as Alembic pulls it), the last
statement sent, and which statements of the running revision were committed before it
failed (inside ``op.get_context().autocommit_block()``, or before it, since entering the
block commits). :func:`failure_of` turns the exception and that record into a
:class:`MigrationFailure`, whose :meth:`~MigrationFailure.sentence` is the one line the
command prints and whose :meth:`~MigrationFailure.to_dict` is what ``--json`` carries.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from qxdb.core.failures import LOCK_NOT_AVAILABLE, error_code_of
from qxdb.urls import redact_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "CONCURRENT_INDEX",
    "LOCK_NOT_AVAILABLE",
    "MigrationFailure",
    "StepTracker",
    "describe_statement",
    "error_code_of",
    "failure_of",
    "shorten_sql",
]

_MAX_STATEMENT = 160
_ADAPTER_PREFIX = re.compile(r"^<class '[\w.]+'>:\s*")
_SECRET_LITERAL = re.compile(r"(?i)\b(password|secret|token)(\s+|\s*=\s*)'(?:[^']|'')*'")
_READS = ("SELECT", "SHOW", "PRAGMA", "SET ", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_NAME = r'(?:"[^"]+"|[\w.]+)'
# A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind on PostgreSQL.
CONCURRENT_INDEX = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.I
)
_OBJECT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^ALTER TABLE (?:ONLY )?({_NAME}) ADD (?:COLUMN )?({_NAME})", re.I), "column"),
    (
        re.compile(
            rf"^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?({_NAME})", re.I
        ),
        "index",
    ),
    (re.compile(rf"^CREATE TABLE (?:IF NOT EXISTS )?({_NAME})", re.I), "table"),
    (
        re.compile(
            rf"^CREATE (?:OR REPLACE )?(VIEW|FUNCTION|TRIGGER|TYPE|SEQUENCE)\s+({_NAME})", re.I
        ),
        "kind",
    ),
    (
        re.compile(
            rf"^DROP (TABLE|INDEX|VIEW|TYPE|SEQUENCE) (?:CONCURRENTLY )?(?:IF EXISTS )?({_NAME})",
            re.I,
        ),
        "dropped",
    ),
    (
        re.compile(rf"^ALTER TABLE (?:ONLY )?({_NAME}) DROP (?:COLUMN )?({_NAME})", re.I),
        "dropped column",
    ),
]


def shorten_sql(sql: str, url: str = "", limit: int = _MAX_STATEMENT) -> str:
    """One line, at most ``limit`` characters, with passwords and secret literals masked."""
    text = " ".join(sql.split())
    text = _SECRET_LITERAL.sub(lambda m: f"{m[1]}{m[2]}'***'", text)
    if url:
        text = redact_secrets(text, url)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_statement(sql: str) -> str | None:
    """``column color``, ``index ix_orders_color``, … for a committed change; None for a read."""
    text = " ".join(sql.split())
    if not text or text.upper().startswith(_READS):
        return None
    for pattern, kind in _OBJECT_PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        groups = [g.strip('"') for g in match.groups()]
        if kind == "column":
            return f"column {groups[0]}.{groups[1]}"
        if kind == "kind":
            return f"{groups[0].lower()} {groups[1]}"
        if kind == "dropped":
            return f"{groups[0].lower()} {groups[1]} dropped"
        if kind == "dropped column":
            return f"column {groups[0]}.{groups[1]} dropped"
        return f"{kind} {groups[0]}"
    return f"the effects of {shorten_sql(text, limit=80)}"


@dataclass
class StepTracker:
    """The live record of a migration run, fed by connection events and the runner."""

    url: str = ""
    revision: str | None = None
    message: str = ""
    direction: str = ""
    statements: list[str] = field(default_factory=list)
    persisted_upto: int = 0
    applied: list[str] = field(default_factory=list)

    def start(self, direction: str, revision: str, message: str) -> None:
        self.direction, self.revision, self.message = direction, revision, message
        self.statements.clear()
        self.persisted_upto = 0

    def finish(self) -> None:
        if self.revision is not None:
            self.applied.append(self.revision)
        self.revision = None
        self.statements.clear()
        self.persisted_upto = 0

    @property
    def persisted(self) -> list[str]:
        """What the running revision committed before it failed, said as objects."""
        seen: list[str] = []
        for sql in self.statements[: self.persisted_upto]:
            described = describe_statement(sql)
            if described and described not in seen:
                seen.append(described)
        return seen

    # -- SQLAlchemy connection events ---------------------------------------------------

    def attach(self, connection: Connection) -> None:
        from sqlalchemy import event

        event.listen(connection, "after_cursor_execute", self._after)
        event.listen(connection, "commit", self._commit)

    def detach(self, connection: Connection) -> None:
        from sqlalchemy import event

        event.remove(connection, "after_cursor_execute", self._after)
        event.remove(connection, "commit", self._commit)

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.revision is None:
            return
        self.statements.append(statement)
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            self.persisted_upto = len(self.statements)

    def _commit(self, _conn: Any) -> None:
        # A commit while a revision runs and before Alembic recorded it: entering an
        # autocommit_block commits what the revision did so far.
        if self.revision is not None:
            self.persisted_upto = len(self.statements)


@dataclass(frozen=True, slots=True)
class MigrationFailure:
    """Everything known about a revision that failed; the details of its MigrationError."""

    revision: str | None
    revision_message: str
    direction: str
    error: str
    code: str | None
    statement: str | None
    applied: list[str]
    before: list[str]
    after: list[str]
    persisted: list[str]
    atomic: bool
    retries: int = 0

    @property
    def transactional(self) -> bool:
        return not self.persisted

    def sentence(self) -> str:
        """The one line: what failed, where, why, and what state the database is in now."""
        if self.revision is None:  # before any revision ran (e.g. creating alembic_version)
            label = f"the {self.direction or 'migration'} run"
        else:
            label = f"revision {self.revision}" + (
                f" ({self.revision_message})" if self.revision_message else ""
            )
        parts = [
            f"{label} failed: {self.error}" + (f" [{_code_label(self.code)}]" if self.code else "")
        ]
        if self.statement:
            parts.append(f"statement: {self.statement}")
        parts.append(self.state_sentence())
        return "; ".join(parts)

    def state_sentence(self) -> str:
        at = ", ".join(self.after) if self.after else "base (no revision)"
        name = self.revision or "the next revision"
        undone = "not undone" if self.direction == "downgrade" else "not applied"
        text = f"the database is at {at}; {name} {undone}"
        if self.atomic and self.applied and self.after == self.before:
            text += (
                f" (atomic run: the {len(self.applied)} revision(s) before it were rolled back too)"
            )
        elif self.applied:
            done = "undone" if self.direction == "downgrade" else "applied"
            text += f" ({len(self.applied)} revision(s) before it were {done} and kept)"
        if self.persisted:
            created = all(_is_creation(item) for item in self.persisted)
            left = (
                f"{_and(self.persisted)} {'exists' if len(self.persisted) == 1 else 'exist'}"
                if created
                else f"these stay done: {_and(self.persisted)}"
            )
            text += (
                f"; {name} ran non-transactional steps before failing: {left}"
                " — check before re-running"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["transactional"] = self.transactional
        data["state"] = self.state_sentence()
        return data


def _is_creation(item: str) -> bool:
    return not item.endswith(" dropped") and not item.startswith("the effects of")


def _code_label(code: str) -> str:
    return code if code.startswith("SQLITE") else f"SQLSTATE {code}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def failure_of(
    exc: BaseException,
    tracker: StepTracker,
    *,
    before: list[str],
    after: list[str],
    atomic: bool,
    retries: int = 0,
    left_behind: list[str] | None = None,
) -> MigrationFailure:
    """Build the failure report of ``exc`` raised while ``tracker``'s revision ran."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        cause: BaseException = exc.orig if exc.orig is not None else exc
        statement = exc.statement
    else:
        cause, statement = exc, None
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    # SQLAlchemy's asyncpg adapter prefixes "<class 'asyncpg.exceptions.XError'>: ".
    first = _ADAPTER_PREFIX.sub("", first).strip() or type(cause).__name__
    if not isinstance(exc, DBAPIError):
        first = f"{type(cause).__name__}: {first}"
    error = redact_secrets(first, tracker.url)
    return MigrationFailure(
        revision=tracker.revision,
        revision_message=tracker.message,
        direction=tracker.direction,
        error=error,
        code=error_code_of(exc),
        statement=shorten_sql(statement, tracker.url) if statement else None,
        applied=list(tracker.applied),
        before=before,
        after=after,
        persisted=tracker.persisted + (left_behind or []),
        atomic=atomic,
        retries=retries,
    )
