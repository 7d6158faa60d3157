"""The migration test kit: is this migration history healthy? (``qxdb migrate test``)

On an **empty** database it checks, in this order:

``history``       the revisions load (no revision names a parent that does not exist)
``single_head``   one head (two heads: ``qxdb migrate merge``)
``upgrade``       empty -> head runs
``models_match``  at head, the models match the database (no drift)
``downgrade``     head -> base, one revision at a time: every downgrade runs, and base is
                  left as empty as it was found
``stairway``      at each revision: up, down one, up again. Down must leave no trace (the
                  reflected schema and the row counts equal those before the up), and the
                  second up must run and give what the first gave (``no_trace`` and
                  ``stairway`` problems)
``offline_sql``   each revision's ``--sql`` renders (no revision needs a live connection)

A check that cannot run because an earlier one failed is listed in ``skipped`` with the
reason. The stairway needs a single head.

From a service's tests, in one line (the qxdb pytest plugin's ``postgres_url`` gives a
fresh database per test)::

    from qxdb.migrations.testkit import assert_migrations_healthy

    def test_migrations(postgres_url: str) -> None:
        assert_migrations_healthy("migrations/alembic.ini", url=postgres_url)

The command runs the kit on a scratch database it creates and drops (a temporary file on
SQLite, ``CREATE DATABASE`` on the configured PostgreSQL server), never on the configured
database itself unless asked (``--in-place``, which still requires it to be empty).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from qxdb.core.blocking import run_blocking
from qxdb.errors import DatabaseUnavailableError, Error, ValidationError
from qxdb.migrations.drift import describe, flatten
from qxdb.migrations.env import (
    CONNECTION_ATTRIBUTE,
    ON_VERSION_APPLY_ATTRIBUTE,
    SETTINGS_ATTRIBUTE,
)
from qxdb.migrations.failure import StepTracker
from qxdb.settings import DatabaseSettings
from qxdb.urls import display_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

__all__ = [
    "CHECKS",
    "KitProblem",
    "KitReport",
    "assert_migrations_healthy",
    "run_testkit",
    "scratch_database",
]

CHECKS = (
    "history",
    "single_head",
    "upgrade",
    "models_match",
    "downgrade",
    "stairway",
    "offline_sql",
)
_VERSION_TABLES = frozenset({"alembic_version"})
T = TypeVar("T")
Snapshot = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class KitProblem:
    check: str
    revision: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        where = f" [{self.revision}]" if self.revision else ""
        return f"{self.check}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class KitReport:
    dialect: str
    revisions: int
    passed: list[str]
    skipped: dict[str, str]
    problems: list[KitProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dialect": self.dialect,
            "revisions": self.revisions,
            "passed": self.passed,
            "skipped": self.skipped,
            "problems": [p.to_dict() for p in self.problems],
        }


class _Kit:
    """One run of the kit on one connection; collects problems as it goes."""

    def __init__(self, cfg: Config, script: ScriptDirectory, connection: Connection) -> None:
        self.cfg, self.script, self.connection = cfg, script, connection
        self.problems: list[KitProblem] = []
        self.passed: list[str] = []
        self.skipped: dict[str, str] = {}
        self.tracker = StepTracker(url=cfg.attributes[SETTINGS_ATTRIBUTE].resolved_url)

    # -- helpers ------------------------------------------------------------------------

    def problem(self, check: str, revision: str | None, message: str) -> None:
        self.problems.append(KitProblem(check, revision, message))

    def finished(self, check: str, problems_before: int) -> None:
        if len(self.problems) == problems_before:
            self.passed.append(check)

    def heads(self) -> list[str]:
        from alembic.runtime.migration import MigrationContext as Ctx

        found = sorted(str(h) for h in Ctx.configure(self.connection).get_current_heads())
        self.connection.rollback()
        return found

    def move(self, direction: str, target: str) -> str | None:
        """Run one Alembic move; the failure sentence, or None when it ran."""
        from qxdb.migrations.runner import _alembic_move, _failure, _MoveOptions

        before = self.heads()
        self.tracker.applied.clear()  # a failure report counts what this move applied
        try:
            _alembic_move(self.cfg, self.script, direction, target, self.tracker)
        except Exception as exc:
            failure = _failure(exc, self.connection, self.tracker, before, _MoveOptions(), 0)
            return failure.sentence() if failure is not None else f"{type(exc).__name__}: {exc}"
        return None

    def snapshot(self) -> Snapshot:
        from sqlalchemy import func, inspect, select, table

        inspector = inspect(self.connection)
        shot: Snapshot = {}
        for name in sorted(set(inspector.get_table_names()) - _VERSION_TABLES):
            columns = {
                c["name"]: (str(c["type"]), bool(c["nullable"]), str(c.get("default")))
                for c in inspector.get_columns(name)
            }
            indexes = {
                str(i["name"]): (tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(name)
            }
            uniques = {
                str(u["name"]): tuple(u["column_names"])
                for u in inspector.get_unique_constraints(name)
            }
            fks = {
                str(f["name"]): (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(name)
            }
            rows = self.connection.execute(select(func.count()).select_from(table(name))).scalar()
            shot[name] = {
                "columns": columns,
                "indexes": indexes,
                "unique constraints": uniques,
                "foreign keys": fks,
                "rows": rows,
            }
        self.connection.rollback()
        return shot

    # -- the checks -----------------------------------------------------------------------

    def run(self, order: list[str], head_count: int) -> None:
        empty = self.snapshot()
        start = len(self.problems)
        failed = self.move("upgrade", "heads")
        if failed:
            self.problem("upgrade", None, f"empty -> head failed: {failed}")
            for check in ("models_match", "downgrade", "stairway"):
                self.skipped[check] = "the upgrade to head failed"
            return
        self.finished("upgrade", start)

        start = len(self.problems)
        for difference in self.differences():
            self.problem("models_match", None, difference)
        self.finished("models_match", start)

        start = len(self.problems)
        if not self.downgrade_to_base(empty):
            self.skipped["stairway"] = "a downgrade failed"
            return
        self.finished("downgrade", start)

        if head_count != 1:
            self.skipped["stairway"] = f"{head_count} heads: the stairway needs one"
            return
        start = len(self.problems)
        self.stairway(order, empty)
        self.finished("stairway", start)

    def differences(self) -> list[str]:
        from alembic.autogenerate import compare_metadata

        from qxdb.migrations.runner import _run_env

        found: list[str] = []

        def read(_rev: Any, context: MigrationContext) -> list[Any]:
            metadata = context.opts.get("target_metadata")
            if metadata is None:
                found.append("env.py passes no target_metadata: nothing to compare with")
                return []
            found.extend(
                describe(d, context.dialect).message
                for d in flatten(compare_metadata(context, metadata))
            )
            return []

        _run_env(self.cfg, self.script, read)
        self.connection.rollback()
        return found

    def one_down(self, current: list[str]) -> str:
        """The target that undoes one step from ``current``.

        Alembic's ``-1`` is ambiguous at a merge (two parents) and with several heads: a
        merge is undone to its parents; of several heads, one goes with its own parent.
        """
        from alembic.util import to_tuple

        if len(current) == 1:
            item = self.script.get_revision(current[0])
            parents = to_tuple(item.down_revision, default=()) if item is not None else ()
            if len(parents) <= 1:
                return "-1"
            return str(parents[0])  # un-merge: the heads become the parents
        item = self.script.get_revision(current[0])
        parents = to_tuple(item.down_revision, default=()) if item is not None else ()
        return str(parents[0]) if parents else "base"

    def downgrade_to_base(self, empty: Snapshot) -> bool:
        while current := self.heads():
            failed = self.move("downgrade", self.one_down(current))
            if failed:
                self.problem("downgrade", ", ".join(current), f"the downgrade failed: {failed}")
                return False
        left = _compare(empty, self.snapshot())
        if left:
            self.problem("downgrade", None, f"base is not empty after downgrading: {left}")
        return True

    def stairway(self, order: list[str], empty: Snapshot) -> None:
        below = empty
        for revision in order:
            failed = self.move("upgrade", revision)
            if failed:
                self.problem("stairway", revision, f"the upgrade failed: {failed}")
                return
            if self.heads() != [revision]:
                # Half-way along parallel branches (several heads): "down one" cannot name
                # this revision alone; the full downgrade above has run its downgrade.
                below = self.snapshot()
                continue
            above = self.snapshot()
            failed = self.move("downgrade", self.one_down([revision]))
            if failed:
                self.problem("stairway", revision, f"the downgrade failed: {failed}")
                return
            trace = _compare(below, self.snapshot())
            if trace:
                self.problem("no_trace", revision, f"the downgrade left a trace: {trace}")
            failed = self.move("upgrade", revision)
            if failed:
                self.problem(
                    "stairway", revision, f"upgrading again after its downgrade failed: {failed}"
                )
                return
            again = self.snapshot()
            differs = _compare(above, again)
            if differs and not trace:
                self.problem(
                    "stairway", revision, f"upgrading again gave a different result: {differs}"
                )
            below = again


def _compare(expected: Snapshot, actual: Snapshot) -> str:
    """What differs between two snapshots, said briefly ("" when equal)."""
    said: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            said.append(f"table {name} is missing")
            continue
        if name not in expected:
            said.append(f"table {name} remains")
            continue
        for part in ("columns", "indexes", "unique constraints", "foreign keys"):
            was, now = expected[name][part], actual[name][part]
            for key in sorted(set(was) | set(now)):
                label = {"columns": "column", "indexes": "index"}.get(part, part[:-1])
                if key not in now:
                    said.append(f"{label} {name}.{key} is missing")
                elif key not in was:
                    said.append(f"{label} {name}.{key} remains")
                elif was[key] != now[key]:
                    said.append(f"{label} {name}.{key} changed from {was[key]} to {now[key]}")
        if expected[name]["rows"] != actual[name]["rows"]:
            said.append(
                f"table {name} has {actual[name]['rows']} row(s), not {expected[name]['rows']}"
            )
    return "; ".join(said)


def _history(script: ScriptDirectory) -> tuple[list[str], list[str], str | None]:
    """(revisions base first, heads, problem) of the script folder."""
    import warnings

    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    # Alembic warns "Revision X referenced from X -> Y is not present", then raises a bare
    # KeyError('X'): keep the warning, it is the readable half.
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            order = [s.revision for s in script.walk_revisions()]
            heads = sorted(script.get_heads())
        except (RevisionError, CommandError, KeyError) as exc:
            notes = [" ".join(str(w.message).split()) for w in said]
            return [], [], "; ".join(notes) or " ".join(str(exc).split())
    return list(reversed(order)), heads, None


def _offline(cfg: Config, script: ScriptDirectory, problems: list[KitProblem]) -> None:
    import io

    from alembic import command
    from alembic.util import to_tuple

    for item in script.walk_revisions():
        parents = [str(r) for r in to_tuple(item.down_revision, default=())]
        if len(parents) > 1:
            continue  # a merge: --sql cannot start from two revisions
        span = f"{parents[0]}:{item.revision}" if parents else item.revision
        buffer = io.StringIO()
        saved = cfg.output_buffer
        cfg.output_buffer = buffer
        try:
            command.upgrade(cfg, span, sql=True)
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            problems.append(
                KitProblem(
                    "offline_sql",
                    item.revision,
                    f"--sql does not render: {type(exc).__name__}: {text}",
                )
            )
        finally:
            cfg.output_buffer = saved


async def run_testkit(
    *,
    config: str | Path | None = None,
    settings: DatabaseSettings | None = None,
) -> KitReport:
    """Run every check of the kit on the (empty) database of ``settings``.

    Raises :class:`ValidationError` when the database is not empty: the kit upgrades and
    downgrades it, so it refuses to touch one that holds anything.
    """
    from qxdb.migrations.runner import _load, _on_connection, _scripts

    settings = settings or DatabaseSettings()
    cfg = _load(config, settings)
    script = _scripts(cfg)
    order, heads, broken = _history(script)
    problems: list[KitProblem] = []
    skipped: dict[str, str] = {}
    passed: list[str] = []
    if broken:
        problems.append(KitProblem("history", None, f"the revisions do not load: {broken}"))
        skipped.update({c: "the revisions do not load" for c in CHECKS if c != "history"})
        return KitReport(settings.dialect_name, 0, passed, skipped, problems)
    passed.append("history")
    if len(heads) > 1:
        problems.append(
            KitProblem(
                "single_head",
                None,
                f"{len(heads)} heads ({', '.join(heads)}): merge them (qxdb migrate merge)",
            )
        )
    else:
        passed.append("single_head")

    def work() -> _Kit:
        from sqlalchemy import inspect

        connection: Connection = cfg.attributes[CONNECTION_ATTRIBUTE]
        tables = sorted(inspect(connection).get_table_names())
        connection.rollback()
        if tables:
            raise ValidationError(
                f"the migration test kit needs an empty database; {display_url(settings.resolved_url)} "
                f"has tables ({', '.join(tables[:5])}{', …' if len(tables) > 5 else ''}): "
                "use a scratch database ('qxdb migrate test' makes one)"
            )
        kit = _Kit(cfg, script, connection)
        cfg.attributes[ON_VERSION_APPLY_ATTRIBUTE] = lambda **_kw: kit.tracker.finish()
        kit.tracker.attach(connection)
        try:
            kit.run(order, len(heads))
        finally:
            kit.tracker.detach(connection)
        return kit

    kit, _ = await _on_connection(cfg, work)
    problems.extend(kit.problems)
    passed.extend(kit.passed)
    skipped.update(kit.skipped)
    offline: list[KitProblem] = []
    _offline(_load(config, settings), script, offline)
    problems.extend(offline)
    if not offline:
        passed.append("offline_sql")
    return KitReport(settings.dialect_name, len(order), passed, skipped, problems)


@asynccontextmanager
async def scratch_database(settings: DatabaseSettings) -> AsyncIterator[DatabaseSettings]:
    """Settings for a new, empty database beside the configured one; dropped afterwards.

    SQLite: a file in a temporary folder. PostgreSQL: ``CREATE DATABASE qxdb_kit_…`` on the
    configured server (the role needs CREATEDB), ``DROP … WITH (FORCE)`` at the end.
    """
    if settings.dialect_name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="qxdb-kit-") as folder:
            yield settings.with_url(f"sqlite+aiosqlite:///{Path(folder) / 'kit.sqlite3'}")
        return
    if settings.dialect_name != "postgresql":
        raise ValidationError(
            f"the test kit supports PostgreSQL and SQLite, not {settings.dialect_name}"
        )
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from qxdb.engine import connect_checked, create_engine

    name = f"qxdb_kit_{uuid.uuid4().hex[:12]}"
    url = make_url(settings.resolved_url)
    engine = create_engine(settings.model_copy(update={"pool_kind": "null"}))
    quoted = engine.dialect.identifier_preparer.quote(name)

    async def admin(sql: str) -> None:
        async with connect_checked(engine) as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text(sql))

    try:
        try:
            await admin(f"CREATE DATABASE {quoted}")
        except Error:
            raise
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise DatabaseUnavailableError(
                f"cannot create a scratch database on {display_url(settings.resolved_url)}: "
                f"{first} (the test kit needs CREATEDB; or run it --in-place on an empty database)"
            ) from None
        try:
            yield settings.with_url(url.set(database=name).render_as_string(hide_password=False))
        finally:
            await admin(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await engine.dispose()


def assert_migrations_healthy(
    config: str | Path | None = None,
    *,
    url: str | None = None,
    settings: DatabaseSettings | None = None,
) -> KitReport:
    """The pytest one-liner: run the kit on an empty database, fail listing every problem."""
    settings = (settings or DatabaseSettings()).with_url(url)
    report = run_blocking(run_testkit(config=config, settings=settings))
    if not report.ok:
        lines = "\n".join(f"  - {p.line()}" for p in report.problems)
        raise AssertionError(f"{len(report.problems)} migration problem(s):\n{lines}")
    return report
