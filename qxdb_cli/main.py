"""The Typer app: global options, command groups, and the entry point.

Command modules import only Typer at module level; SQLAlchemy, Alembic and the drivers
are imported inside the commands that need them, so ``qxdb --help`` and
``qxdb cursor …`` start as fast as Typer itself.
"""

from __future__ import annotations

import sys
import threading
from typing import Annotated, Any

import typer

from qxdb_cli import cursor, demo, doctor, migrate, outbox, schema
from qxdb_cli._click_compat import click_exceptions
from qxdb_cli.common import Interrupted, hoist_global_options
from qxdb_cli.errors import EXIT_FINDINGS, EXIT_USAGE, report
from qxdb_cli.state import state

EXIT_INTERRUPTED = 130


class _Group(typer.core.TyperGroup):
    """Ctrl-C outside a command's own accounting (Typer would turn it into a silent exit
    130): one line, still exit 130."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted("stopped before finishing") from None


app = typer.Typer(
    cls=_Group,
    name="qxdb",
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
    unreachable, 130 interrupted (Ctrl-C; one line says what was done).
    """
    state.database_url = database_url or None
    state.debug = debug


app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.add_typer(migrate.app, name="migrate")
app.add_typer(outbox.app, name="outbox")
app.add_typer(cursor.app, name="cursor")
app.add_typer(schema.app, name="schema")


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
