"""Startup of ``qxdb migrate --help`` and ``qxdb migrate up --help``: Alembic stays unimported.

Run: ``python benchmarks/migrate_help_startup.py [--quick]``. Needs no database.

Baselines in the same run, interleaved (benchmarks/_common.py): the minimal Typer app of
benchmarks/startup.py (``sub --help`` for a group's help, ``sub decode --help`` for a
command's) and ``alembic --help``. Target: the migrate help as fast as any group's help
(median ratio <= 1.15 against the minimal app) and at least 4x faster than Alembic's:
Alembic and SQLAlchemy are imported only when a migrate command runs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _common import Comparison, load, print_header, print_table, time_commands
from startup import MINIMAL_APP

BIN = Path(sys.executable).parent


def main() -> int:
    runs = 10  # whole processes; alembic --help alone takes 0.5-2 s
    print_header(
        "migrate help startup: whole-process wall time",
        "the minimal Typer app of startup.py (same help formatting) and alembic --help",
    )
    qxdb = str(BIN / "qxdb")
    alembic = shutil.which("alembic", path=str(BIN)) or str(BIN / "alembic")
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_typer_app.py"
        minimal.write_text(MINIMAL_APP)
        app = [sys.executable, str(minimal)]
        t = time_commands(
            {
                "qxdb migrate --help": [qxdb, "migrate", "--help"],
                "qxdb migrate up --help": [qxdb, "migrate", "up", "--help"],
                "typer app sub --help": [*app, "sub", "--help"],
                "typer app sub decode --help": [*app, "sub", "decode", "--help"],
                "alembic --help": [alembic, "--help"],
            },
            runs,
        )
    lines = []
    for ours, base, limit in (
        ("qxdb migrate --help", "typer app sub --help", 1.15),
        ("qxdb migrate up --help", "typer app sub decode --help", 1.15),
        ("qxdb migrate --help", "alembic --help", 0.25),
    ):
        c = Comparison(f"{ours} / {base}", ours=t[ours], base=t[base])
        c.target = f"median ratio <= {limit}"
        c.verdict = c.ratios.median <= limit
        lines.append(c)
    print_table(lines, runs)
    missed = [c.name for c in lines if c.verdict is False]
    print("targets:", "met" if not missed else "MISSED: " + "; ".join(missed), f"({load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
