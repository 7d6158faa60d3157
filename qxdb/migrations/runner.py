"""One function per ``qxdb migrate`` command, so a service can migrate from code::

    from qxdb.migrations import upgrade

    await upgrade()   # at start-up: under the migration lock, to head

Every function finds the project's Alembic config (:func:`~qxdb.migrations.project.find_config`)
unless given ``config=``, and takes the database from ``settings`` (default:
:class:`~qxdb.settings.DatabaseSettings` from the environment). Alembic runs in-process on
a connection the runner opens (Alembic's "connection sharing" recipe), so env.py never
opens its own and the runner controls timeouts and the lock.

``upgrade``, ``downgrade`` and ``stamp`` hold the migration lock (:mod:`.lock`) for the
whole run; ``on_wait`` hears about it when another migration holds it. Alembic's errors
become qxdb errors: an unknown or unreachable revision is a :class:`ValidationError`, a
database that cannot be reached a :class:`DatabaseUnavailableError`, a failing revision a
:class:`RevisionFailedError` (a :class:`MigrationError`) that says where it stopped.

``upgrade`` and ``downgrade`` run each revision in its own transaction (``atomic=True``:
one for the run) with a DDL lock timeout, and retry a revision that timed out on a lock
(SQLSTATE 55P03) when it ran nothing non-transactional. Progress hooks for callers:
``on_wait(message)`` (the migration lock, and each retry) and ``on_step(step)``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from qxdb.core.defaults import MIGRATION_LOCK_RETRIES, MIGRATION_LOCK_TIMEOUT_SECONDS
from qxdb.engine import connect_checked
from qxdb.errors import (
    ConfigurationError,
    MigrationError,
    RevisionFailedError,
    ValidationError,
)
from qxdb.migrations.connection import check_ddl_lock_timeout, migration_engine
from qxdb.migrations.drift import Difference, describe, flatten
from qxdb.migrations.env import (
    CONNECTION_ATTRIBUTE,
    ON_VERSION_APPLY_ATTRIBUTE,
    SETTINGS_ATTRIBUTE,
    TRANSACTION_PER_MIGRATION_ATTRIBUTE,
)
from qxdb.migrations.failure import LOCK_NOT_AVAILABLE, MigrationFailure, StepTracker, failure_of
from qxdb.migrations.lock import WaitCallback, migration_lock
from qxdb.migrations.project import find_config
from qxdb.settings import DatabaseSettings
from qxdb.values import is_unicode

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

__all__ = [
    "DEFAULT_LOCK_RETRIES",
    "DEFAULT_LOCK_TIMEOUT",
    "AppliedStep",
    "CheckReport",
    "CurrentState",
    "MigrationError",
    "MigrationRun",
    "NewRevision",
    "RevisionFailedError",
    "RevisionInfo",
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "merge",
    "plan_downgrade",
    "revision",
    "stamp",
    "upgrade",
    "upgrade_sql",
]

DEFAULT_LOCK_TIMEOUT = MIGRATION_LOCK_TIMEOUT_SECONDS
# A revision that hit lock_timeout (SQLSTATE 55P03) is retried this many times, after a
# jittered, doubling pause (about 1 s, 2 s, 4 s): long enough for a short transaction in
# the way to end, short enough that a deploy does not hang.
DEFAULT_LOCK_RETRIES = MIGRATION_LOCK_RETRIES
_RETRY_BASE_SECONDS = 1.0
_RETRY_CAP_SECONDS = 15.0
T = TypeVar("T")
ConfigPath = str | Path | None
StepCallback = Callable[["AppliedStep"], None]


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    revision: str
    down_revisions: list[str]
    message: str
    is_head: bool
    path: str
    branch_labels: list[str] = field(default_factory=list)
    is_merge: bool = False
    is_branch_point: bool = False
    created: str | None = None

    @classmethod
    def of(cls, script: Script) -> RevisionInfo:
        from alembic.util import to_tuple

        return cls(
            revision=script.revision,
            down_revisions=[str(r) for r in to_tuple(script.down_revision, default=())],
            message=(script.doc or "").strip(),
            is_head=script.is_head,
            path=script.path,
            branch_labels=sorted(script.branch_labels),
            is_merge=script.is_merge_point,
            is_branch_point=script.is_branch_point,
            created=_created(script),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _created(script: Script) -> str | None:
    # The template writes "Create Date: ..." into every revision's docstring.
    for line in (script.longdoc or "").splitlines():
        if line.strip().startswith("Create Date:"):
            return line.split(":", 1)[1].strip() or None
    return None


@dataclass(frozen=True, slots=True)
class AppliedStep:
    direction: str  # "upgrade", "downgrade" or "stamp"
    revision: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MigrationRun:
    command: str
    target: str
    before: list[str]
    after: list[str]
    steps: list[AppliedStep]
    waited_seconds: float
    retries: int = 0  # revisions re-run after a lock timeout (55P03)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CurrentState:
    current: list[RevisionInfo]
    unknown: list[str]
    heads: list[str]

    @property
    def at_head(self) -> bool:
        return not self.unknown and sorted(r.revision for r in self.current) == sorted(self.heads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": [r.to_dict() for r in self.current],
            "unknown": self.unknown,
            "heads": self.heads,
            "at_head": self.at_head,
        }


@dataclass(frozen=True, slots=True)
class NewRevision:
    revision: RevisionInfo
    changes: list[Difference] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision.to_dict(), "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True, slots=True)
class CheckReport:
    current: list[str]
    heads: list[str]
    pending: list[str]
    differences: list[Difference]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "current": self.current,
            "heads": self.heads,
            "pending": self.pending,
            "differences": [d.to_dict() for d in self.differences],
            "problems": self.problems,
        }


# -- loading the project ------------------------------------------------------------


def _load(config: ConfigPath, settings: DatabaseSettings | None, **kw: Any) -> Config:
    from alembic.config import Config

    path = find_config(config)
    cfg = Config(str(path), cmd_opts=argparse.Namespace(quiet=True), **kw)
    cfg.attributes[SETTINGS_ATTRIBUTE] = settings or DatabaseSettings()
    return cfg


def _scripts(cfg: Config) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    with alembic_errors():
        return ScriptDirectory.from_config(cfg)


@contextmanager
def alembic_errors() -> Iterator[None]:
    """Alembic's exceptions as qxdb errors with one readable line."""
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        text = str(exc).strip()
        if "not up to date" in text:
            raise MigrationError(
                "the database is not at head: run 'qxdb migrate up' first "
                "(autogenerate compares the models with an up-to-date database)"
            ) from None
        if "Path doesn't exist" in text or "No 'script_location'" in text:
            raise ConfigurationError(text) from None
        raise ValidationError(text) from None
    except RevisionError as exc:
        raise ValidationError(str(exc).strip()) from None


def _run_env(
    cfg: Config,
    script: ScriptDirectory,
    fn: Callable[[Any, MigrationContext], list[Any]],
) -> None:
    from alembic.runtime.environment import EnvironmentContext

    with EnvironmentContext(cfg, script, fn=fn), alembic_errors():
        script.run_env()


async def _on_connection(
    cfg: Config,
    work: Callable[[], T],
    *,
    lock: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: WaitCallback | None = None,
    ddl_lock_timeout: float | None = None,
) -> tuple[T, float]:
    """Run ``work`` (which calls Alembic) on a migration connection, under the lock if asked."""
    settings: DatabaseSettings = cfg.attributes[SETTINGS_ATTRIBUTE]
    engine = migration_engine(settings, ddl_lock_timeout=ddl_lock_timeout)

    def call(connection: Connection) -> T:
        cfg.attributes[CONNECTION_ATTRIBUTE] = connection
        try:
            with _migration_failures(settings.resolved_url), alembic_errors():
                return work()
        finally:
            cfg.attributes.pop(CONNECTION_ATTRIBUTE, None)

    try:
        if not lock:
            async with connect_checked(engine) as conn:
                return await conn.run_sync(call), 0.0
        async with (
            migration_lock(engine, max_wait=lock_timeout, on_wait=on_wait) as waited,
            connect_checked(engine) as conn,
        ):
            return await conn.run_sync(call), waited
    finally:
        await engine.dispose()


@contextmanager
def _migration_failures(url: str) -> Iterator[None]:
    """Driver errors outside a revision: a lost connection (exit 3) or a failed read."""
    from sqlalchemy.exc import DBAPIError

    from qxdb.engine import unavailable_error

    try:
        yield
    except DBAPIError as exc:
        if _lost_connection(exc):
            raise unavailable_error(exc, url) from None
        cause = exc.orig if exc.orig is not None else exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise MigrationError(f"a migration failed: {type(cause).__name__}: {first}") from None


def _lost_connection(exc: BaseException) -> bool:
    """The connection broke under us, as opposed to a statement the database refused.

    One classification for the library and the command (:mod:`qxdb.core.failures`): an
    ``OperationalError`` from SQLite ("duplicate column", "no such table") is a failed
    statement, not "cannot connect".
    """
    from qxdb.core.failures import is_unavailable

    return is_unavailable(exc)


def _heads_of(connection_heads: tuple[str, ...] | Any) -> list[str]:
    return sorted(str(h) for h in (connection_heads or ()))


# -- the commands -----------------------------------------------------------------------


async def upgrade(
    revision: str = "head",
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: WaitCallback | None = None,
    on_step: StepCallback | None = None,
    atomic: bool = False,
    ddl_lock_timeout: float | None = None,
    retries: int = DEFAULT_LOCK_RETRIES,
) -> MigrationRun:
    """Upgrade to ``revision`` (default ``head``) under the migration lock.

    Each revision runs in its own transaction: a failure keeps the revisions before it
    (``atomic=True``: one transaction for the whole run, all or nothing). Migration
    statements wait at most ``ddl_lock_timeout`` seconds for a table lock (default
    ``QX_DB__LOCK_TIMEOUT_MS`` if set, else 5 s); a revision that timed out is retried up
    to ``retries`` times, each retry announced through ``on_wait``. A failing revision
    raises :class:`RevisionFailedError` whose ``failure`` names it, its statement and the
    state left.
    """
    return await _move(
        "upgrade",
        revision,
        config,
        settings,
        _MoveOptions(lock_timeout, on_wait, on_step, atomic, ddl_lock_timeout, retries),
    )


async def downgrade(
    revision: str,
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: WaitCallback | None = None,
    on_step: StepCallback | None = None,
    atomic: bool = False,
    ddl_lock_timeout: float | None = None,
    retries: int = DEFAULT_LOCK_RETRIES,
) -> MigrationRun:
    """Downgrade to ``revision`` (an id, ``-1``, ``base``) under the migration lock.

    Transactions, lock timeout and retries as in :func:`upgrade`.
    """
    if not revision or not revision.strip():
        raise ValidationError("downgrade needs a target revision (an id, -1, or base)")
    return await _move(
        "downgrade",
        revision,
        config,
        settings,
        _MoveOptions(lock_timeout, on_wait, on_step, atomic, ddl_lock_timeout, retries),
    )


async def stamp(
    revision: str,
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: WaitCallback | None = None,
    on_step: StepCallback | None = None,
) -> MigrationRun:
    """Record ``revision`` as current without running any migration (under the lock)."""
    return await _move(
        "stamp", revision, config, settings, _MoveOptions(lock_timeout, on_wait, on_step)
    )


@dataclass(frozen=True, slots=True)
class _MoveOptions:
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    on_wait: WaitCallback | None = None
    on_step: StepCallback | None = None
    atomic: bool = False
    ddl_lock_timeout: float | None = None
    retries: int = DEFAULT_LOCK_RETRIES


def _retry_delay(attempt: int) -> float:
    """Full-ish jitter: replicas retrying together should not collide again in step."""
    ceiling = min(_RETRY_CAP_SECONDS, _RETRY_BASE_SECONDS * 2**attempt)
    return round(random.uniform(ceiling / 2, ceiling), 2)


async def _move(
    command_name: str,
    revision: str,
    config: ConfigPath,
    settings: DatabaseSettings | None,
    options: _MoveOptions,
) -> MigrationRun:
    if options.retries < 0:
        raise ValidationError(f"retries must be >= 0, not {options.retries}")
    check_ddl_lock_timeout(options.ddl_lock_timeout)  # before anything connects
    cfg = _load(config, settings)
    script = _scripts(cfg)  # a broken script folder fails before we connect
    steps: list[AppliedStep] = []
    before: list[str] = []
    tracker = StepTracker(url=cfg.attributes[SETTINGS_ATTRIBUTE].resolved_url)

    def applied(*, ctx: MigrationContext, step: Any, heads: set[str], run_args: Any) -> None:
        if step.is_stamp:
            rev = ",".join(step.destination_revision_ids) or "base"
            done = AppliedStep("stamp", rev, "")
        else:
            doc = step.up_revision
            done = AppliedStep(
                "upgrade" if step.is_upgrade else "downgrade",
                step.up_revision_id,
                (doc.doc or "").strip() if doc is not None else "",
            )
        tracker.finish()
        steps.append(done)
        if options.on_step is not None:
            options.on_step(done)

    cfg.attributes[ON_VERSION_APPLY_ATTRIBUTE] = applied
    cfg.attributes[TRANSACTION_PER_MIGRATION_ATTRIBUTE] = not options.atomic

    def read_heads(connection: Connection) -> list[str]:
        from alembic.runtime.migration import MigrationContext as Ctx

        found = _heads_of(Ctx.configure(connection).get_current_heads())
        # End the transaction that read autobegan: Alembic must own the transactions, or
        # it takes the connection for an outer transaction and never commits.
        connection.rollback()
        return found

    retried = [0]

    def work() -> list[str]:
        connection: Connection = cfg.attributes[CONNECTION_ATTRIBUTE]
        before[:] = read_heads(connection)
        attempt = 0
        tracker.attach(connection)
        try:
            while True:
                try:
                    _alembic_move(cfg, script, command_name, revision, tracker)
                    break
                except Exception as exc:
                    failure = _failure(exc, connection, tracker, before, options, attempt)
                    if failure is None:
                        raise
                    if (
                        failure.code != LOCK_NOT_AVAILABLE
                        or not failure.transactional
                        or attempt >= options.retries
                    ):
                        raise RevisionFailedError(failure) from None
                    attempt += 1
                    retried[0] = attempt
                    delay = _retry_delay(attempt - 1)
                    if options.on_wait is not None:
                        options.on_wait(
                            f"revision {failure.revision} could not take a lock in time "
                            f"({failure.error}; SQLSTATE {failure.code}); nothing of it was "
                            f"kept; retry {attempt} of {options.retries} in {delay:g} s"
                        )
                    _sleep(delay)
        finally:
            tracker.detach(connection)
        return read_heads(connection)

    after, waited = await _on_connection(
        cfg,
        work,
        lock=True,
        lock_timeout=options.lock_timeout,
        on_wait=options.on_wait,
        ddl_lock_timeout=options.ddl_lock_timeout,
    )
    return MigrationRun(
        command_name, revision, before, after, steps, round(waited, 3), retries=retried[0]
    )


def _sleep(seconds: float) -> None:
    # We run inside AsyncConnection.run_sync: await on the event loop rather than block it.
    from sqlalchemy.util import await_only

    await_only(asyncio.sleep(seconds))


def _failure(
    exc: Exception,
    connection: Connection,
    tracker: StepTracker,
    before: list[str],
    options: _MoveOptions,
    attempt: int,
) -> MigrationFailure | None:
    """The report of a failed revision, or None when ``exc`` is not one (bad target…)."""
    from alembic.runtime.migration import MigrationContext as Ctx
    from sqlalchemy.exc import DBAPIError

    if tracker.revision is None and not isinstance(exc, DBAPIError):
        return None  # Alembic refused before running anything: alembic_errors says why
    if isinstance(exc, DBAPIError) and _lost_connection(exc):
        return None
    left: list[str] = []
    try:
        if connection.in_transaction():
            connection.rollback()
        after = _heads_of(Ctx.configure(connection).get_current_heads())
        left = _invalid_index(connection, exc)
        connection.rollback()
    except Exception:  # the state cannot be read: say what we knew before
        after = list(before)
    failure = failure_of(
        exc,
        tracker,
        before=before,
        after=after,
        atomic=options.atomic,
        retries=attempt,
        left_behind=left,
    )
    tracker.revision = None
    return failure


def _invalid_index(connection: Connection, exc: Exception) -> list[str]:
    """The INVALID index a failed ``CREATE INDEX CONCURRENTLY`` leaves on PostgreSQL.

    It blocks a rerun ("relation already exists") and slows every write to the table
    until it is dropped, so the report names it.
    """
    from sqlalchemy import bindparam, text
    from sqlalchemy.exc import DBAPIError

    from qxdb.migrations.failure import CONCURRENT_INDEX

    statement = exc.statement if isinstance(exc, DBAPIError) else None
    match = CONCURRENT_INDEX.match(statement or "")
    if match is None or connection.dialect.name != "postgresql":
        return []
    name = match[1].strip('"')
    query = text(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
    ).bindparams(bindparam("name"))
    invalid = connection.execute(query, {"name": name}).scalar()
    return [f"invalid index {name} (DROP INDEX CONCURRENTLY it)"] if invalid else []


def _alembic_move(
    cfg: Config, script: ScriptDirectory, direction: str, target: str, tracker: StepTracker
) -> None:
    """``alembic upgrade|downgrade|stamp`` online, telling ``tracker`` each step as it starts."""
    from alembic import command
    from alembic.runtime.environment import EnvironmentContext

    if direction == "stamp":
        command.stamp(cfg, target)
        return
    if ":" in target:
        raise ValidationError(f"a range ({target}) is only allowed with --sql")

    def plan(rev: Any, _context: MigrationContext) -> Iterator[Any]:
        steps = (
            script._upgrade_revs(target, rev)
            if direction == "upgrade"
            else script._downgrade_revs(target, rev)
        )
        return _announced(steps, direction, tracker)

    with EnvironmentContext(cfg, script, fn=plan, as_sql=False, destination_rev=target):
        script.run_env()


def _announced(steps: list[Any], direction: str, tracker: StepTracker) -> Iterator[Any]:
    # Alembic pulls the steps one at a time and runs each before pulling the next.
    for step in steps:
        doc = step.revision
        tracker.start(direction, doc.revision, (doc.doc or "").strip())
        yield step


def upgrade_sql(
    revision: str = "head",
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
) -> str:
    """The SQL an upgrade would run (offline mode); ``revision`` may be ``start:end``."""
    from alembic import command

    buffer = io.StringIO()
    cfg = _load(config, settings, output_buffer=buffer)
    _scripts(cfg)
    with alembic_errors():
        command.upgrade(cfg, revision, sql=True)
    return buffer.getvalue()


async def current(
    *, config: ConfigPath = None, settings: DatabaseSettings | None = None
) -> CurrentState:
    """The revisions the database is at (read-only)."""
    cfg = _load(config, settings)
    script = _scripts(cfg)
    found: list[str] = []

    def read(_rev: Any, context: MigrationContext) -> list[Any]:
        found.extend(_heads_of(context.get_current_heads()))
        return []

    await _on_connection(cfg, lambda: _run_env(cfg, script, read))
    known: list[RevisionInfo] = []
    unknown: list[str] = []
    for rev in found:
        try:
            item = script.get_revision(rev)
        except Exception:  # a revision the database knows and this checkout does not
            item = None
        if item is None:
            unknown.append(rev)
        else:
            known.append(RevisionInfo.of(item))
    return CurrentState(known, unknown, sorted(script.get_heads()))


def history(*, config: ConfigPath = None, rev_range: str | None = None) -> list[RevisionInfo]:
    """Every revision, newest first (no database needed).

    ``rev_range`` is ``A:B`` (from A up to B, both included; either side may be empty for
    base or heads), as ``alembic history -r`` takes it.
    """
    script = _scripts(_load(config, None))
    base, head = "base", "heads"
    if rev_range is not None:
        if rev_range.count(":") != 1:
            raise ValidationError(
                f"--range {rev_range!r} must look like A:B (either side may be empty)"
            )
        lower, upper = (part.strip() for part in rev_range.split(":"))
        base, head = lower or "base", upper or "heads"
    with alembic_errors():
        return [RevisionInfo.of(s) for s in script.walk_revisions(base=base, head=head)]


def revision_message(text: str) -> str:
    """A revision's message, checked: it is written into the revision's docstring by the
    project's template and into its file name, so it is one line of printable text with
    no backslash (an escape in a docstring: ``\\N`` does not even compile) and no ``\"\"\"``
    (it would end the docstring). Undecodable bytes from the command line are refused
    here, not as an error of the template engine."""
    value = text.strip()
    if not value:
        raise ValidationError("a revision needs a message (-m 'what it does')")
    if not is_unicode(value):
        raise ValidationError("the revision message is not valid UTF-8 text")
    if not value.isprintable():
        raise ValidationError(
            "the revision message must be one line of printable text (no control characters)"
        )
    if "\\" in value or '"""' in value:
        raise ValidationError(
            'the revision message cannot hold a backslash or """ (it becomes a docstring)'
        )
    return value


def merge(
    message: str | None = None,
    *,
    revisions: list[str] | None = None,
    config: ConfigPath = None,
) -> RevisionInfo:
    """Write a merge revision joining ``revisions`` (default: every head) into one head.

    The revision is written from the project's own template, so it looks like any other;
    it has no operations. One head only: :class:`ValidationError` (nothing to merge).
    """
    from alembic import command

    checked = revision_message(message) if message is not None else None
    cfg = _load(config, None)
    script = _scripts(cfg)
    targets = revisions or sorted(script.get_heads())
    if len(targets) < 2:
        raise ValidationError(
            f"nothing to merge: {len(targets)} head(s) ({', '.join(targets) or 'no revisions'})"
        )
    text = checked if checked is not None else f"merge {', '.join(targets)}"
    with alembic_errors():
        written = command.merge(cfg, targets, message=text)
    if written is None:
        raise MigrationError("Alembic wrote no merge revision")
    return RevisionInfo.of(written)


def heads(*, config: ConfigPath = None) -> list[RevisionInfo]:
    """The head revisions (more than one means branches to merge; no database needed)."""
    script = _scripts(_load(config, None))
    with alembic_errors():
        found = [script.get_revision(h) for h in script.get_heads()]
    return [RevisionInfo.of(s) for s in found if s is not None]


async def plan_downgrade(
    revision: str, *, config: ConfigPath = None, settings: DatabaseSettings | None = None
) -> list[RevisionInfo]:
    """The revisions ``downgrade(revision)`` would undo, newest first (read-only)."""
    if not revision or not revision.strip():
        raise ValidationError("downgrade needs a target revision (an id, -1, or base)")
    cfg = _load(config, settings)
    script = _scripts(cfg)
    plan: list[RevisionInfo] = []

    def read(_rev: Any, context: MigrationContext) -> list[Any]:
        current_heads = context.get_current_heads()
        with alembic_errors():
            plan.extend(
                RevisionInfo.of(s)
                for s in script.iterate_revisions(
                    current_heads, revision, select_for_downgrade=True
                )
            )
        return []

    await _on_connection(cfg, lambda: _run_env(cfg, script, read))
    return plan


async def revision(
    message: str,
    *,
    autogenerate: bool = False,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
) -> NewRevision:
    """Write a new revision; with ``autogenerate``, from the differences models vs database."""
    from alembic import command
    from alembic.operations.ops import MigrationScript

    message = revision_message(message)
    cfg = _load(config, settings)
    _scripts(cfg)  # a broken script folder fails before we connect
    changes: list[Difference] = []

    def capture(context: MigrationContext, _rev: Any, directives: list[MigrationScript]) -> None:
        for directive in directives:
            for ops in directive.upgrade_ops_list:
                changes.extend(describe(d, context.dialect) for d in flatten(ops.as_diffs()))

    def write() -> Any:
        return command.revision(
            cfg, message, autogenerate=autogenerate, process_revision_directives=capture
        )

    if autogenerate:
        written, _ = await _on_connection(cfg, write)
    else:
        with alembic_errors():
            written = write()
    first = written[0] if isinstance(written, list) else written
    if first is None:
        raise MigrationError("Alembic wrote no revision")
    return NewRevision(RevisionInfo.of(first), changes)


async def check(
    *, config: ConfigPath = None, settings: DatabaseSettings | None = None
) -> CheckReport:
    """Do the models, the revisions and the database agree? Read-only.

    Problems: more than one head; the database not at head (or at a revision this
    checkout does not know); any difference between the models and the database.
    """
    from alembic.autogenerate import compare_metadata

    cfg = _load(config, settings)
    script = _scripts(cfg)
    seen: dict[str, Any] = {}

    def read(_rev: Any, context: MigrationContext) -> list[Any]:
        metadata = context.opts.get("target_metadata")
        if metadata is None:
            raise ConfigurationError("env.py passes no target_metadata: nothing to compare with")
        seen["current"] = _heads_of(context.get_current_heads())
        seen["diffs"] = [
            describe(d, context.dialect) for d in flatten(compare_metadata(context, metadata))
        ]
        return []

    await _on_connection(cfg, lambda: _run_env(cfg, script, read))
    heads_now = sorted(script.get_heads())
    current_now: list[str] = seen["current"]
    problems: list[str] = []
    if len(heads_now) > 1:
        problems.append(
            f"{len(heads_now)} heads ({', '.join(heads_now)}): merge them "
            "(qxdb migrate merge) so upgrades have one target"
        )
    pending = _pending(script, current_now, problems)
    if pending:
        at = ", ".join(current_now) if current_now else "no revision (empty)"
        problems.append(
            f"the database is at {at}, not at head: {len(pending)} revision(s) not applied "
            f"({', '.join(pending)})"
        )
    differences: list[Difference] = seen["diffs"]
    problems.extend(d.message for d in differences)
    return CheckReport(current_now, heads_now, pending, differences, problems)


def _pending(script: ScriptDirectory, current_now: list[str], problems: list[str]) -> list[str]:
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    unknown = [rev for rev in current_now if _missing(script, rev)]
    if unknown:
        problems.append(
            f"the database is at revision(s) this project does not have: {', '.join(unknown)}"
        )
        return []
    try:
        upper = script.iterate_revisions("heads", tuple(current_now), implicit_base=True)
        return [s.revision for s in upper if s.revision not in current_now]
    except (RevisionError, CommandError) as exc:
        problems.append(f"cannot plan an upgrade from {', '.join(current_now)}: {exc}")
        return []


def _missing(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is None
    except Exception:
        return True
