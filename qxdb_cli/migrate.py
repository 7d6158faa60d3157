"""``qxdb migrate``: Alembic migrations with a lock, readable checks and qxdb's exit codes.

Every command here parses its options, calls one function of :mod:`qxdb.migrations` and
renders the result. Alembic and SQLAlchemy are imported inside the commands, so
``qxdb migrate --help`` costs no more than ``qxdb --help``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qxdb.core import defaults
from qxdb_cli import common, render
from qxdb_cli.common import DryRunOption, JsonOption, YesOption

if TYPE_CHECKING:
    from qxdb.migrations import AppliedStep, MigrationRun, RevisionInfo
    from qxdb.settings import DatabaseSettings

app = typer.Typer(
    help="Alembic migrations: init, revision, up, down, current, history, heads, merge, stamp, "
    "check, test, lint.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Alembic config file. Default: ./alembic.ini, else the tool.qxdb.migrate.config key "
        "in ./pyproject.toml, else ./migrations/alembic.ini.",
        show_default=False,
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        min=0,
        help="Seconds to wait while another migration holds the migration lock.",
    ),
]
AtomicOption = Annotated[
    bool,
    typer.Option(
        "--atomic",
        help="One transaction for the whole run (all or nothing). Default: one per revision, "
        "so a failure keeps the revisions before it.",
    ),
]
DdlLockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--ddl-lock-timeout",
        # No min/max here: the range (finite, 0 to 2,147,483.647) is the library's rule,
        # qxdb.migrations.check_ddl_lock_timeout, checked before anything connects.
        help="Seconds a migration statement may wait for a table lock (PostgreSQL lock_timeout; "
        "0: forever; at most 2147483.647). Default: QX_DB__LOCK_TIMEOUT_MS if set, else 5.",
        show_default=False,
    ),
]
RetriesOption = Annotated[
    int,
    typer.Option(
        "--retries",
        min=0,
        help="Retry a revision that hit the DDL lock timeout this many times (jittered backoff).",
    ),
]
_DEFAULT_LOCK_TIMEOUT = defaults.MIGRATION_LOCK_TIMEOUT_SECONDS
_DEFAULT_RETRIES = defaults.MIGRATION_LOCK_RETRIES
# Lets a relative revision such as -1 through as an argument instead of an unknown option.
_RELATIVE_REVISIONS: dict[str, Any] = {"ignore_unknown_options": True}


def _waiting(message: str) -> None:
    render.note(f"qxdb: {message}")


def _step(step: AppliedStep) -> None:
    render.out().print(
        f"{step.direction:<9} {step.revision}  {step.message}".rstrip(), markup=False
    )


def _settings(config: Path | None, *, creates: bool = False) -> DatabaseSettings:
    from qxdb_cli.state import load_settings

    settings = load_settings(creates=creates, config=config)
    render.announce_database(settings)
    return settings


def _interrupted(
    command: str,
    target: str,
    config: Path | None,
    settings: DatabaseSettings,
    seen: list[AppliedStep],
) -> str:
    """After Ctrl-C: read where the database really is (a revision Alembic reported may
    have been rolled back with its transaction) and what is left to do."""
    import asyncio

    from qxdb.migrations import current, plan_downgrade
    from qxdb.migrations.plan import plan_upgrade
    from qxdb_cli.errors import message_for

    verb = {"upgrade": "applied", "downgrade": "undone", "stamp": "stamped"}[command]
    try:
        now = asyncio.run(current(config=config, settings=settings))
        if command == "upgrade":
            left = asyncio.run(plan_upgrade(target, config=config, settings=settings))
        elif command == "downgrade":
            left = asyncio.run(plan_downgrade(target, config=config, settings=settings))
        else:
            left = []
    except Exception as exc:
        reported = ", ".join(s.revision for s in seen) or "none"
        return (
            f"Alembic reported {verb}: {reported}; the database's revision could not be "
            f"read afterwards ({message_for(exc)}): check with 'qxdb migrate current'"
        )
    waiting = [r.revision for r in left]
    done = [s.revision for s in seen if s.revision not in waiting]
    at = ", ".join([r.revision for r in now.current] + now.unknown) or "base (no revision)"
    if command == "stamp":
        return f"the database is at {at}; run it again to stamp {target}"
    total = len(done) + len(waiting)
    parts = [
        f"{verb} {len(done)} of {render.plural(total, 'revision')}"
        + (f" ({', '.join(done)})" if done else "")
    ]
    if waiting:
        parts.append(f"not {verb}: {', '.join(waiting)}")
    parts.append(f"the database is at {at}")
    if waiting:
        parts.append("run it again to continue")
    return "; ".join(parts)


def _revision_line(info: RevisionInfo, *, current: bool = False) -> str:
    marks = [m for m, on in (("head", info.is_head), ("current", current)) if on]
    suffix = f" ({', '.join(marks)})" if marks else ""
    return f"{info.revision}{suffix}  {info.message}".rstrip()


@contextmanager
def _json_failure(as_json: bool) -> Iterator[None]:
    """With --json, a failed run is still one JSON document on stdout (and one line on stderr)."""
    from qxdb.errors import Error

    try:
        yield
    except Error as exc:
        if as_json:
            render.print_json({"ok": False, "error": exc.to_dict()})
        raise


def _finish(run: MigrationRun, as_json: bool = False) -> None:
    if as_json:
        render.print_json({"ok": True, **run.to_dict()})
        return
    if not run.steps:
        where = ", ".join(run.after) or "base (no revision)"
        render.out().print(f"nothing to do: the database is at {where}", markup=False)
        return
    where = ", ".join(run.after) or "base (no revision)"
    render.note(f"done: {render.plural(len(run.steps), 'step')}; the database is now at {where}")


@app.command("init")
def init(
    metadata: Annotated[
        str,
        typer.Option(
            "--metadata",
            help="Import path of the models' MetaData: package.module:metadata.",
            show_default=False,
        ),
    ],
    directory: Annotated[
        Path, typer.Argument(help="Folder to create (must not exist or be empty).")
    ] = Path("migrations"),
    dialect: Annotated[
        str | None,
        typer.Option(
            "--dialect",
            help="The database the project is for, recorded in alembic.ini: postgresql or "
            "sqlite. Default: the dialect of --database-url / QX_DB__URL, else sqlite.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Lay down the qxdb Alembic template: alembic.ini (no URL in it), env.py, script.py.mako.

    Refuses to write into a folder that is not empty. The models module must import.
    alembic.ini records the project's dialect: with QX_DB__URL unset, every command
    refuses the embedded SQLite file in a project made for PostgreSQL.

    Example: qxdb migrate init --metadata myservice.models:metadata
    """
    from qxdb.migrations.scaffold import init_project
    from qxdb_cli.state import chosen_dialect

    dialect = (dialect or chosen_dialect() or "sqlite").strip().lower()
    if dialect not in ("postgresql", "sqlite"):
        from qxdb.errors import ValidationError

        raise ValidationError(f"invalid --dialect {dialect!r}: use postgresql or sqlite")
    result = init_project(directory, metadata=metadata, dialect=dialect)
    shown = _relative(result.directory)
    render.out().print(
        f"created {shown}/ (alembic.ini, env.py, script.py.mako, versions/)", markup=False
    )
    if shown != "migrations":
        render.note(
            f"pass --config {_relative(result.config)} to the other commands, or add "
            f'[tool.qxdb.migrate] config = "{_relative(result.config)}" to pyproject.toml'
        )
    render.note(f"recorded: this project is for {dialect} ([qxdb] dialect in alembic.ini)")
    render.note("next: qxdb migrate revision -m 'create tables' --autogenerate && qxdb migrate up")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command("revision")
def revision(
    message: Annotated[
        str, typer.Option("--message", "-m", help="What the revision does.", show_default=False)
    ],
    autogenerate: Annotated[
        bool,
        typer.Option("--autogenerate", help="Write the differences between models and database."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write a new revision file; --autogenerate fills it from the models (database at head).

    Example: qxdb migrate revision -m "add orders" --autogenerate
    """
    import asyncio

    from qxdb.migrations import revision as new_revision

    # Autogenerate compares with the database, and may create the embedded one (empty).
    settings = _settings(config, creates=True) if autogenerate else None
    result = asyncio.run(
        new_revision(message, autogenerate=autogenerate, config=config, settings=settings)
    )
    render.out().print(f"wrote {_relative(Path(result.revision.path))}", markup=False)
    for change in result.changes:
        render.out().print(f"  {change.message}", markup=False)
    if autogenerate and not result.changes:
        render.note("no differences found: the revision is empty")


@app.command("up", context_settings=_RELATIVE_REVISIONS)
def up(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it (start:end allowed).")
    ] = False,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = _DEFAULT_LOCK_TIMEOUT,
    atomic: AtomicOption = False,
    ddl_lock_timeout: DdlLockTimeoutOption = None,
    retries: RetriesOption = _DEFAULT_RETRIES,
    as_json: JsonOption = False,
) -> None:
    """Upgrade the database to REVISION (default: head) under the migration lock.

    Each revision runs in its own transaction. A failure names the revision, the
    statement, the database error and the state it left, and exits 1. A statement that
    waits longer than --ddl-lock-timeout for a table lock is cancelled and its revision
    retried (--retries). Another deploy migrating the same database at the same moment
    makes this one wait (saying so on stderr) up to --lock-timeout seconds, then exit 3.

    Example: qxdb migrate up
    """

    from qxdb.migrations import upgrade, upgrade_sql

    settings = _settings(config, creates=True)
    if sql:
        text = upgrade_sql(revision, config=config, settings=settings)
        render.out().print(text, markup=False, end="")
        return
    seen: list[AppliedStep] = []
    with _json_failure(as_json):
        run = common.run(
            upgrade(
                revision,
                config=config,
                settings=settings,
                lock_timeout=lock_timeout,
                on_wait=_waiting,
                on_step=_stepper(seen, show=not as_json),
                atomic=atomic,
                ddl_lock_timeout=ddl_lock_timeout,
                retries=retries,
            ),
            interrupted=lambda: _interrupted("upgrade", revision, config, settings, seen),
        )
    _finish(run, as_json)


def _stepper(seen: list[AppliedStep], *, show: bool = True) -> Any:
    def on_step(step: AppliedStep) -> None:
        seen.append(step)
        if show:
            _step(step)

    return on_step


@app.command("down", context_settings=_RELATIVE_REVISIONS)
def down(
    revision: Annotated[
        str | None,
        typer.Argument(help="Target: -1 (one step), a revision id, or base.", show_default=False),
    ] = None,
    yes: YesOption = False,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = _DEFAULT_LOCK_TIMEOUT,
    atomic: AtomicOption = False,
    ddl_lock_timeout: DdlLockTimeoutOption = None,
    retries: RetriesOption = _DEFAULT_RETRIES,
    dry_run: DryRunOption = False,
) -> None:
    """Downgrade to REVISION: shows the revisions it will undo, then asks (--yes skips).

    The target is required. Without a terminal, --yes is required. --dry-run shows the
    revisions and changes nothing (no lock, no question).

    Example: qxdb migrate down -1 --dry-run
    """
    from qxdb.errors import ValidationError
    from qxdb.migrations import check_ddl_lock_timeout, downgrade, plan_downgrade

    if not revision:
        raise ValidationError(
            "down needs a target revision: -1 (one step back), a revision id, or base"
        )
    check_ddl_lock_timeout(ddl_lock_timeout)  # a bad option fails before anything is shown
    settings = _settings(config)
    plan = common.run(plan_downgrade(revision, config=config, settings=settings))
    if not plan:
        render.out().print(f"nothing to undo: the database is already at {revision}", markup=False)
        return
    would = "would" if dry_run else "will"
    render.out().print(f"{would} undo {render.plural(len(plan), 'revision')}:", markup=False)
    for info in plan:
        render.out().print(f"  {_revision_line(info)}", markup=False)
    if dry_run:
        render.note("dry run: nothing was changed")
        return
    common.confirm_or_refuse(
        "Undo these revisions?",
        what=f"undo {render.plural(len(plan), 'revision')}",
        yes=yes,
    )
    seen: list[AppliedStep] = []
    run = common.run(
        downgrade(
            revision,
            config=config,
            settings=settings,
            lock_timeout=lock_timeout,
            on_wait=_waiting,
            on_step=_stepper(seen),
            atomic=atomic,
            ddl_lock_timeout=ddl_lock_timeout,
            retries=retries,
        ),
        interrupted=lambda: _interrupted("downgrade", revision, config, settings, seen),
    )
    _finish(run)


@app.command("stamp", context_settings=_RELATIVE_REVISIONS)
def stamp(
    revision: Annotated[str, typer.Argument(help="Revision to record.", show_default=False)],
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = _DEFAULT_LOCK_TIMEOUT,
) -> None:
    """Record REVISION as the database's current one without running migrations (locked).

    Example: qxdb migrate stamp head
    """
    from qxdb.migrations import stamp as stamp_revision

    settings = _settings(config, creates=True)
    seen: list[AppliedStep] = []
    run = common.run(
        stamp_revision(
            revision,
            config=config,
            settings=settings,
            lock_timeout=lock_timeout,
            on_wait=_waiting,
            on_step=_stepper(seen),
        ),
        interrupted=lambda: _interrupted("stamp", revision, config, settings, seen),
    )
    _finish(run)


@app.command("current")
def current(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the revision(s) the database is at. Read-only.

    Example: qxdb migrate current --json
    """
    from qxdb.migrations import current as read_current

    state = common.run(read_current(config=config, settings=_settings(config)))
    if as_json:
        render.print_json(state.to_dict())
        return
    if not state.current and not state.unknown:
        render.out().print("no revision applied (the database has no migrations)", markup=False)
    for info in state.current:
        render.out().print(_revision_line(info), markup=False)
    for rev in state.unknown:
        render.out().print(f"{rev} (not in this project's revisions)", markup=False)


@app.command("history")
def history(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Parents, date, file and branch marks of each revision, and a marker on the "
            "revision the database is at (reads the database).",
        ),
    ] = False,
    rev_range: Annotated[
        str | None,
        typer.Option(
            "--range",
            "-r",
            help="Only revisions from A up to B (A:B; either side may be empty).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List every revision, newest first. Needs no database (except --verbose).

    Example: qxdb migrate history --verbose --range ae1027a6:head
    """
    import asyncio

    from qxdb.migrations import current as read_current, history as read_history

    revisions = read_history(config=config, rev_range=rev_range)
    at: list[str] = []
    if verbose:
        state = asyncio.run(read_current(config=config, settings=_settings(config)))
        at = [r.revision for r in state.current] + state.unknown
    if as_json:
        document: Any = [
            r.to_dict() | ({"current": r.revision in at} if verbose else {}) for r in revisions
        ]
        render.print_json(document)
        return
    if not revisions:
        render.out().print("no revisions yet", markup=False)
    for info in revisions:
        parents = ", ".join(info.down_revisions) or "base"
        is_current = info.revision in at
        if not verbose:
            render.out().print(f"{parents} -> {_revision_line(info)}", markup=False)
            continue
        marker = "*" if is_current else " "
        render.out().print(f"{marker} {_revision_line(info, current=is_current)}", markup=False)
        kinds = [
            k for k, on in (("merge", info.is_merge), ("branch point", info.is_branch_point)) if on
        ]
        details = [
            f"parents: {parents}",
            *([f"created: {info.created}"] if info.created else []),
            *([f"branch labels: {', '.join(info.branch_labels)}"] if info.branch_labels else []),
            *([f"kind: {', '.join(kinds)}"] if kinds else []),
            f"file: {_relative(Path(info.path))}",
        ]
        for line in details:
            render.out().print(f"    {line}", markup=False)
    if verbose and not at:
        render.note("the database has no revision applied (* marks the current revision)")


@app.command("merge")
def merge(
    message: Annotated[
        str | None,
        typer.Option("--message", "-m", help="What the merge joins.", show_default=False),
    ] = None,
    revisions: Annotated[
        list[str] | None,
        typer.Argument(help="Revisions to merge. Default: every head.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write a merge revision that joins the heads (two branches) into one. Needs no database.

    Example: qxdb migrate merge -m "join billing and shipping"
    """
    from qxdb.migrations import merge as write_merge

    info = write_merge(message, revisions=revisions or None, config=config)
    render.out().print(f"wrote {_relative(Path(info.path))}", markup=False)
    render.note(
        f"merged {', '.join(info.down_revisions)} into {info.revision}; next: qxdb migrate up"
    )


@app.command("heads")
def heads(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the head revision(s); more than one means branches to merge. Needs no database.

    Example: qxdb migrate heads --json
    """
    from qxdb.migrations import heads as read_heads

    found = read_heads(config=config)
    if as_json:
        render.print_json([r.to_dict() for r in found])
        return
    if not found:
        render.out().print("no revisions yet", markup=False)
    for info in found:
        render.out().print(_revision_line(info), markup=False)


@app.command("check")
def check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Exit 1, listing each problem, when the models and the database differ, when there is
    more than one head, or when the database is not at head. Read-only.

    Example: qxdb migrate check --json
    """
    from qxdb.migrations import check as run_check

    report = common.run(run_check(config=config, settings=_settings(config)))
    if as_json:
        render.print_json(report.to_dict())
    elif report.ok:
        render.out().print(
            f"ok: the database is at head ({', '.join(report.heads) or 'no revisions'}) "
            "and matches the models",
            markup=False,
        )
    else:
        for problem in report.problems:
            render.out().print(f"- {problem}", markup=False)
    if not report.ok:
        render.note(f"qxdb: check failed: {render.plural(len(report.problems), 'problem')}")
        raise typer.Exit(1)


@app.command("test")
def run_tests(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Use the configured database (it must be empty) instead of a scratch database.",
        ),
    ] = False,
) -> None:
    """Test the migration history: one head; empty -> head; models match at head; every
    downgrade runs; the stairway (up, down one, up) leaves no trace; each revision's --sql
    renders. Exit 1 listing each problem.

    Runs on a scratch database it creates beside the configured one and drops afterwards
    (a temporary file on SQLite; CREATE DATABASE on PostgreSQL, which needs CREATEDB).

    Example: qxdb migrate test --json
    """
    import asyncio

    from qxdb.migrations.testkit import KitReport, run_testkit, scratch_database
    from qxdb.urls import display_url

    # The kit makes its own scratch database beside the configured one; only --in-place
    # uses (and needs) the configured database itself.
    settings = _settings(config, creates=True)

    async def kit() -> KitReport:
        if in_place:
            return await run_testkit(config=config, settings=settings)
        async with scratch_database(settings) as scratch:
            render.note(
                f"scratch database: {display_url(scratch.resolved_url)} (dropped afterwards)"
            )
            return await run_testkit(config=config, settings=scratch)

    report = asyncio.run(kit())
    if as_json:
        render.print_json(report.to_dict())
    else:
        for check in report.passed:
            render.out().print(f"ok       {check}", markup=False)
        for check, reason in report.skipped.items():
            render.out().print(f"skipped  {check}: {reason}", markup=False)
        for problem in report.problems:
            render.out().print(f"problem  {problem.line()}", markup=False)
    if not report.ok:
        render.note(
            f"qxdb: migrate test: {len(report.problems)} problem(s) in {report.revisions} revision(s)"
        )
        raise typer.Exit(1)
    render.note(f"ok: {report.revisions} revision(s) passed every check")


from qxdb_cli import migrate_lint as _lint  # noqa: E402, F401 - registers `qxdb migrate lint`
