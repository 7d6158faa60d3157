"""What every command shares: options, the question before a bulk change, the progress
bar, running the async work, and what Ctrl-C says.

One place for each, so ``--json`` has one spelling and one help text, a confirmation is
worded once, and every interrupted command ends with one line saying what it did.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from qxdb_cli import render

T = TypeVar("T")

# -- options ------------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask; needed without a terminal.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change, change nothing.")
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Full ids and names, however wide the terminal.")
]


# The checkers (schema check, migrate lint) share their output and rule-selection options.
class CheckFormat(StrEnum):
    table = "table"
    json = "json"
    github = "github"
    sarif = "sarif"


CheckFormatOption = Annotated[
    CheckFormat,
    typer.Option(
        "--format",
        help="table for people, json for programs, github for CI annotations, sarif "
        "(2.1.0) for code scanning.",
    ),
]
FormatJsonOption = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
RuleOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rule", metavar="ID", help="Run only this rule (repeatable).", show_default=False
    ),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore", metavar="ID", help="Turn this rule off (repeatable).", show_default=False
    ),
]


def github_escape_data(text: str) -> str:
    """A GitHub workflow command's message, escaped as the runner reads it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(text: str) -> str:
    """A workflow command property (file=, title=), escaped as the runner reads it."""
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


# The app's global options, accepted after the command too (``qxdb doctor --debug``):
# name -> does it take a value.
GLOBAL_OPTIONS: dict[str, bool] = {"--database-url": True, "--debug": False}


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options that follow the command in front of it, where Click reads them.

    ``qxdb doctor --database-url X`` becomes ``qxdb --database-url X doctor``. Nothing
    after ``--`` moves, and neither does the value of another option (``-m --debug``
    stays a message only if written ``-m=--debug``; such a message is unlikely).
    """
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if seen_command and name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name]
            if takes_value and "=" not in arg and i + 1 < len(args):
                front.extend(args[i : i + 2])
                i += 2
                continue
            front.append(arg)
        else:
            if not arg.startswith("-"):
                seen_command = True
            elif name in GLOBAL_OPTIONS and GLOBAL_OPTIONS[name] and "=" not in arg:
                # A global option before the command: its value is not the command.
                rest.extend(args[i : i + 2])
                i += 2
                continue
            rest.append(arg)
        i += 1
    return front + rest


# -- the question before a bulk change ------------------------------------------------


def confirm_or_refuse(question: str, *, what: str, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``--yes``; without a terminal, refuse (exit 2).

    ``what`` names the change for the refusal: "change 1,200 outbox rows".
    """
    from qxdb.errors import ValidationError

    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError(f"refusing to {what} without a terminal to ask on: pass --yes")
    typer.confirm(question, abort=True, err=True)


# -- progress -------------------------------------------------------------------------


class BatchProgress:
    """The progress callback of a batched change: counts committed batches and rows, and
    draws a Rich bar on stderr when it is a terminal (nothing otherwise).

    The library calls it once per committed batch, so after Ctrl-C :attr:`done` and
    :attr:`batches` say exactly what is in the database.
    """

    def __init__(self, label: str, total: int) -> None:
        self.done = 0
        self.total = total
        self.batches = 0
        self._progress: Any = None
        self._task: Any = None
        if render.err().is_terminal:
            from rich.progress import Progress

            self._progress = Progress(console=render.err(), transient=True)
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> BatchProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        self.batches += 1
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def so_far(self, verb: str) -> str:
        """``20,000 of 200,000 rows replayed in 2 committed batches``."""
        return (
            f"{render.number(self.done)} of {render.plural(self.total, 'row')} {verb} "
            f"in {render.plural(self.batches, 'committed batch', 'committed batches')}"
        )


# -- running the work, and Ctrl-C --------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C, carrying the one line that says what was done and what was not (exit 130)."""


def run(
    coro: Coroutine[Any, Any, T],
    *,
    interrupted: Callable[[], str] | str = "nothing was changed",
) -> T:
    """Run the command's async work; on Ctrl-C raise :class:`Interrupted` with the story.

    asyncio turns the first SIGINT into a cancellation of the work, so an open
    transaction rolls back and the connection closes before ``interrupted`` is asked
    what was left behind.
    """
    import asyncio

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        story = interrupted() if callable(interrupted) else interrupted
        raise Interrupted(story) from None
