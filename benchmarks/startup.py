"""How fast does ``qxdb`` start? Whole-process wall time against minimal Typer apps and Alembic.

Run: ``python benchmarks/startup.py [--quick] [--runs N]``. Needs no database.

The baselines are written into a temporary folder and timed in the same run, every command
interleaved round by round (benchmarks/_common.py):

* a minimal Typer app as a user would write it: two commands and a sub-app with two
  commands, each taking one ``str``, the same plain Click help as qxdb
  (``rich_markup_mode=None``), Typer's defaults otherwise. Help is compared with help, a
  command run with a command run.
* ``alembic --help``: the tool qxdb's migrate group stands next to.

Targets (issue 15): ``qxdb --help``, ``qxdb outbox --help`` and ``qxdb cursor decode TOKEN``
each at most 1.15x the matching minimal Typer app (median), and ``qxdb --help`` at least
4x faster than ``alembic --help`` (ratio <= 0.25). ``python -c "import typer"`` and bare
``python`` are printed for the floor.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _common import Comparison, Sample, load, print_header, print_table, rounds, time_commands

BIN = Path(sys.executable).parent
# A cursor with {"id": 42}, unsigned: `qxdb cursor decode` shows it (exit 0).
TOKEN = "v1.eyJrIjp7ImlkIjo0Mn0sImQiOiJuIiwidCI6MTcwMDAwMDAwMH0"

MINIMAL_APP = '''
"""A minimal Typer app: two commands and a sub-app, plain Click help (as qxdb)."""
import typer

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, pretty_exceptions_enable=False)
sub = typer.Typer(help="A group of commands.", no_args_is_help=True)


@app.command()
def hello(name: str) -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye(name: str) -> None:
    """Say goodbye."""
    typer.echo(f"bye {name}")


@sub.command()
def decode(token: str) -> None:
    """Echo a token."""
    typer.echo(token)


@sub.command()
def encode(value: str) -> None:
    """Echo a value."""
    typer.echo(value)


app.add_typer(sub, name="sub")

if __name__ == "__main__":
    app()
'''


def commands(minimal: Path) -> dict[str, list[str]]:
    qxdb = str(BIN / "qxdb")
    alembic = shutil.which("alembic", path=str(BIN)) or str(BIN / "alembic")
    app = [sys.executable, str(minimal)]
    return {
        "qxdb --help": [qxdb, "--help"],
        "typer app --help": [*app, "--help"],
        "qxdb outbox --help": [qxdb, "outbox", "--help"],
        "typer app sub --help": [*app, "sub", "--help"],
        "qxdb cursor decode TOKEN": [qxdb, "cursor", "decode", TOKEN],
        "qxdb cursor decode --json TOKEN": [qxdb, "cursor", "decode", "--json", TOKEN],
        "typer app sub decode TOKEN": [*app, "sub", "decode", TOKEN],
        "alembic --help": [alembic, "--help"],
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }


def compare(name: str, ours: Sample, base: Sample, limit: float, what: str) -> Comparison:
    c = Comparison(name, ours=ours, base=base, target=f"median ratio <= {limit} {what}")
    c.verdict = c.ratios.median <= limit
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=rounds(12, 10))
    parser.add_argument("--quick", action="store_true", help="fewer rounds (10)")
    runs = max(10, parser.parse_args().runs)
    print_header(
        "startup: whole-process wall time",
        "a minimal Typer app (plain help, str parameters) and alembic --help, same run",
    )
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_typer_app.py"
        minimal.write_text(MINIMAL_APP)
        t = time_commands(commands(minimal), runs)
    lines = [
        compare(
            "qxdb --help / typer app --help", t["qxdb --help"], t["typer app --help"], 1.15, ""
        ),
        compare(
            "qxdb outbox --help / typer app sub --help",
            t["qxdb outbox --help"],
            t["typer app sub --help"],
            1.15,
            "",
        ),
        compare(
            "qxdb cursor decode / typer app sub decode",
            t["qxdb cursor decode TOKEN"],
            t["typer app sub decode TOKEN"],
            1.15,
            "",
        ),
        compare(
            "qxdb cursor decode --json / typer app sub decode",
            t["qxdb cursor decode --json TOKEN"],
            t["typer app sub decode TOKEN"],
            1.15,
            "",
        ),
        compare(
            "qxdb --help / alembic --help", t["qxdb --help"], t["alembic --help"], 0.25, "(4x)"
        ),
    ]
    print_table(lines, runs)
    print("each command alone (min/median/max ms):")
    for name, sample in t.items():
        print(f"  {name:<34} {sample.fmt()}")
    missed = [c.name for c in lines if c.verdict is False]
    print("targets:", "met" if not missed else "MISSED: " + "; ".join(missed), f"({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
