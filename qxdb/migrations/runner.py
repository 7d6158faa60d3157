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
:class:`MigrationError`.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from qxdb.core.defaults import MIGRATION_LOCK_TIMEOUT_SECONDS
from qxdb.engine import connect_checked
from qxdb.errors import ConfigurationError, MigrationError, ValidationError
from qxdb.migrations.connection import migration_engine
from qxdb.migrations.drift import Difference, describe, flatten
from qxdb.migrations.env import CONNECTION_ATTRIBUTE, ON_VERSION_APPLY_ATTRIBUTE, SETTINGS_ATTRIBUTE
from qxdb.migrations.lock import WaitCallback, migration_lock
from qxdb.migrations.project import find_config
from qxdb.settings import DatabaseSettings

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "AppliedStep",
    "CheckReport",
    "CurrentState",
    "MigrationError",
    "MigrationRun",
    "NewRevision",
    "RevisionInfo",
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "plan_downgrade",
    "revision",
    "stamp",
    "upgrade",
    "upgrade_sql",
]

DEFAULT_LOCK_TIMEOUT = MIGRATION_LOCK_TIMEOUT_SECONDS
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

    @classmethod
    def of(cls, script: Script) -> RevisionInfo:
        from alembic.util import to_tuple

        return cls(
            revision=script.revision,
            down_revisions=[str(r) for r in to_tuple(script.down_revision, default=())],
            message=(script.doc or "").strip(),
            is_head=script.is_head,
            path=script.path,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
) -> tuple[T, float]:
    """Run ``work`` (which calls Alembic) on a migration connection, under the lock if asked."""
    settings: DatabaseSettings = cfg.attributes[SETTINGS_ATTRIBUTE]
    engine = migration_engine(settings)

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
    from sqlalchemy.exc import DBAPIError

    from qxdb.core.failures import is_unavailable
    from qxdb.engine import unavailable_error

    try:
        yield
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise unavailable_error(exc, url) from None
        cause = exc.orig if exc.orig is not None else exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise MigrationError(f"a migration failed: {type(cause).__name__}: {first}") from None


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
) -> MigrationRun:
    """Upgrade to ``revision`` (default ``head``) under the migration lock."""
    return await _move("upgrade", revision, config, settings, lock_timeout, on_wait, on_step)


async def downgrade(
    revision: str,
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: WaitCallback | None = None,
    on_step: StepCallback | None = None,
) -> MigrationRun:
    """Downgrade to ``revision`` (an id, ``-1``, ``base``) under the migration lock."""
    if not revision or not revision.strip():
        raise ValidationError("downgrade needs a target revision (an id, -1, or base)")
    return await _move("downgrade", revision, config, settings, lock_timeout, on_wait, on_step)


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
    return await _move("stamp", revision, config, settings, lock_timeout, on_wait, on_step)


async def _move(
    command_name: str,
    revision: str,
    config: ConfigPath,
    settings: DatabaseSettings | None,
    lock_timeout: float,
    on_wait: WaitCallback | None,
    on_step: StepCallback | None,
) -> MigrationRun:
    from alembic import command

    cfg = _load(config, settings)
    _scripts(cfg)  # a broken script folder fails before we connect
    steps: list[AppliedStep] = []
    before: list[str] = []

    def applied(*, ctx: MigrationContext, step: Any, heads: set[str], run_args: Any) -> None:
        if step.is_stamp:
            rev = ",".join(step.destination_revision_ids) or "base"
            done = AppliedStep("stamp", rev, "")
        else:
            script = step.up_revision
            done = AppliedStep(
                "upgrade" if step.is_upgrade else "downgrade",
                step.up_revision_id,
                (script.doc or "").strip() if script is not None else "",
            )
        steps.append(done)
        if on_step is not None:
            on_step(done)

    cfg.attributes[ON_VERSION_APPLY_ATTRIBUTE] = applied
    action = getattr(command, command_name)

    def work() -> list[str]:
        from alembic.runtime.migration import MigrationContext as Ctx

        connection = cfg.attributes[CONNECTION_ATTRIBUTE]
        before[:] = _heads_of(Ctx.configure(connection).get_current_heads())
        # End the transaction that read autobegan: Alembic must own the transactions, or
        # it takes the connection for an outer transaction and never commits.
        connection.rollback()
        action(cfg, revision)
        after = _heads_of(Ctx.configure(connection).get_current_heads())
        connection.rollback()
        return after

    after, waited = await _on_connection(
        cfg, work, lock=True, lock_timeout=lock_timeout, on_wait=on_wait
    )
    return MigrationRun(command_name, revision, before, after, steps, round(waited, 3))


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


def history(*, config: ConfigPath = None) -> list[RevisionInfo]:
    """Every revision, newest first (no database needed)."""
    script = _scripts(_load(config, None))
    with alembic_errors():
        return [RevisionInfo.of(s) for s in script.walk_revisions()]


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

    if not message.strip():
        raise ValidationError("a revision needs a message (-m 'what it does')")
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
            "(alembic merge heads) so upgrades have one target"
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
