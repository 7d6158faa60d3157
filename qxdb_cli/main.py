"""The Typer app: global options, command groups, and the entry point.

Command modules import only Typer at module level; SQLAlchemy, Alembic and the drivers
are imported inside the commands that need them, and a command module is itself imported
only when its command runs (:mod:`qxdb_cli.lazy`), so ``qxdb --help`` and
``qxdb cursor …`` start as fast as Typer itself.
"""

from __future__ import annotations

import sys
import threading
from typing import Annotated, Any

import typer

from qxdb_cli._click_compat import click_exceptions
from qxdb_cli.common import Interrupted, hoist_global_options
from qxdb_cli.errors import EXIT_FINDINGS, EXIT_USAGE, report
from qxdb_cli.lazy import LazyCommand, LazyTyperGroup, plain_coercion
from qxdb_cli.state import state


class _Commands(LazyTyperGroup):
    # Each summary is the first paragraph of that command's help (a test in
    # tests/cli/test_startup_imports.py keeps them equal): `qxdb --help` lists the
    # commands without importing their modules.
    lazy = (
        LazyCommand(
            "doctor",
            "qxdb_cli.doctor",
            "doctor",
            "Connect and report the dialect, server version, URL (password hidden), pool and tables.",
            group=False,
        ),
        LazyCommand(
            "demo",
            "qxdb_cli.demo",
            "demo",
            "Write an example service into a workspace and run every part of qxdb on it.",
            group=False,
        ),
        LazyCommand(
            "migrate",
            "qxdb_cli.migrate",
            "app",
            "Alembic migrations: init, revision, up, down, current, history, heads, merge, stamp, "
            "check, test, lint.",
            group=True,
        ),
        LazyCommand(
            "outbox",
            "qxdb_cli.outbox",
            "app",
            "Inspect and operate the transactional outbox.",
            group=True,
        ),
        LazyCommand(
            "cursor",
            "qxdb_cli.cursor",
            "app",
            "Decode and encode opaque pagination cursors (no database needed).",
            group=True,
        ),
        LazyCommand(
            "schema",
            "qxdb_cli.schema",
            "app",
            "Check tables against qxdb's schema conventions.",
            group=True,
        ),
    )

    def invoke(self, ctx: Any) -> Any:
        # Ctrl-C outside a command's own accounting (Typer would turn it into a silent
        # exit 130): one line, still exit 130.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted("stopped before finishing") from None


EXIT_INTERRUPTED = 130


app = typer.Typer(
    name="qxdb",
    cls=_Commands,
    help="Database operations for qxdb services: migrations, outbox, cursors, schema checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    # Plain Click help: Typer's Rich help costs about 60-80 ms of imports (rich.markdown,
    # markdown_it) on every --help, which doubles `qxdb --help`. Subcommands inherit this.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from qxdb import __version__

        typer.echo(f"qxdb {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="QX_DB__URL",
            show_envvar=True,
            help="SQLAlchemy async URL (postgres:// is read as asyncpg); overrides QX_DB__URL. "
            "Unset: the embedded SQLite file ./qxdb.sqlite3. May also follow the command.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks on errors. May also follow the command."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Database operations for qxdb services: migrations, outbox, cursors, schema checks.

    Global options may also follow the command (qxdb doctor --database-url URL).
    Exit codes: 0 success, 1 problems found, 2 bad usage or input, 3 database or broker
    unreachable, 70 internal error (a bug: re-run with --debug), 130 interrupted (Ctrl-C;
    one line says what was done).
    """
    state.database_url = database_url or None
    state.debug = debug


# Click 8.2+ raises this for a bare group; older Clicks print the help themselves.
_NO_ARGS_IS_HELP: Any = getattr(click_exceptions, "NoArgsIsHelpError", ())


def _quiet_late_thread_errors(args: threading.ExceptHookArgs) -> None:
    # aiosqlite's worker thread may answer a failed connect after asyncio.run() closed the
    # loop; the command already reported the failure in one line, so this is only noise.
    if isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value):
        return
    threading.__excepthook__(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: run, and map any error to one line and an exit code."""
    command = typer.main.get_command(app)
    plain_coercion(command)
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    if "--debug" not in args:
        threading.excepthook = _quiet_late_thread_errors
    try:
        result = command.main(args=args, prog_name="qxdb", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("qxdb: aborted, nothing was changed\n")
        return EXIT_FINDINGS
    except _NO_ARGS_IS_HELP as exc:
        # A bare `qxdb` or `qxdb migrate` asks what there is: the help, not an "error:".
        sys.stderr.write(f"{exc.format_message()}\n")
        return EXIT_USAGE
    except click_exceptions.ClickException as exc:
        sys.stderr.write(f"qxdb: error: {exc.format_message()}\n")
        return EXIT_USAGE if isinstance(exc, click_exceptions.UsageError) else exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Interrupted as exc:
        sys.stderr.write(f"qxdb: interrupted: {exc}\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("qxdb: interrupted: stopped before finishing\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report(exc, debug=state.debug or "--debug" in args)
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
