"""Startup of ``qxdb migrate --help`` against ``qxdb --help`` (and ``alembic --help``).

Run: ``python benchmarks/migrate_help_startup.py``. Needs no database. The commands run
round-robin (so a burst of load on a shared machine hits them alike); it prints the fastest
and the median wall time of each, and the ratio of the fastest to ``qxdb --help``. Target: ``qxdb migrate --help`` and ``qxdb migrate up --help`` as fast as another
group's help (``qxdb cursor --help``): Alembic and SQLAlchemy are imported only when a
command runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
BIN = Path(sys.executable).parent
COMMANDS: dict[str, list[str]] = {
    "qxdb --help (baseline)": [str(BIN / "qxdb"), "--help"],
    # Another group's help: Typer renders any group's help with more of Rich than the
    # top-level help, so this is the fair baseline for what ``migrate`` itself adds.
    "qxdb cursor --help": [str(BIN / "qxdb"), "cursor", "--help"],
    "qxdb migrate --help": [str(BIN / "qxdb"), "migrate", "--help"],
    "qxdb migrate up --help": [str(BIN / "qxdb"), "migrate", "up", "--help"],
    "alembic --help": [str(BIN / "alembic"), "--help"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def measure() -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(RUNS):
        for name, argv in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    times = measure()
    baseline = min(times["qxdb --help (baseline)"])
    print(f"{RUNS} rounds, commands interleaved (wall clock; the machine may be shared)")
    for name, runs in times.items():
        fastest, median = min(runs), statistics.median(runs)
        print(
            f"  {name:<26} min {fastest * 1000:7.1f} ms  median {median * 1000:7.1f} ms"
            f"   {fastest / baseline:5.2f}x qxdb --help"
        )


if __name__ == "__main__":
    main()
