"""The repository's generator scripts, loaded for tests, and an app with one more command."""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def load_script(name: str) -> ModuleType:
    """A module from scripts/ (they import each other by plain name, as when run directly)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def run_script(name: str, *args: str, hash_seed: str = "random") -> tuple[int, str, str]:
    import os
    import subprocess

    done = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    return done.returncode, done.stdout, done.stderr


class Format(StrEnum):
    json = "json"
    csv = "csv"


extra = typer.Typer(add_completion=False)


@extra.command()
def load(
    source: Annotated[Path, typer.Argument(help="File to read.")],
    fmt: Annotated[Format, typer.Option("--format", help="Input format.")] = Format.json,
    into: Annotated[
        Path, typer.Option("--into", file_okay=False, help="Folder to write to.")
    ] = Path("."),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Say nothing.")] = False,
) -> None:
    """Load rows from a file (a command that exists only in this test).

    Example: qxdb load rows.csv --format csv --into out
    """


def root_with_extra_command() -> Any:
    """The real qxdb command tree plus ``qxdb load``: what an unregenerated file misses."""
    from qxdb_cli.main import app

    root: Any = typer.main.get_command(app)  # a group: it has add_command
    root.add_command(typer.main.get_command(extra), "load")
    return root
