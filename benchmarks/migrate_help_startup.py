"""Startup of ``qxdb migrate --help`` against ``qxdb --help`` (and ``alembic --help``).

Run: ``python benchmarks/migrate_help_startup.py``. Needs no database. Prints the median
wall time of each command over N runs and the ratio to ``qxdb --help`` measured in the
same run. Target: ``qxdb migrate --help`` and ``qxdb migrate up --help`` within 1.2x of
``qxdb --help`` (Alembic and SQLAlchemy are imported only when a command runs).
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
    "qxdb migrate --help": [str(BIN / "qxdb"), "migrate", "--help"],
    "qxdb migrate up --help": [str(BIN / "qxdb"), "migrate", "up", "--help"],
    "alembic --help": [str(BIN / "alembic"), "--help"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def median_seconds(argv: list[str]) -> float:
    times: list[float] = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    results = {name: median_seconds(argv) for name, argv in COMMANDS.items()}
    baseline = results["qxdb --help (baseline)"]
    print(f"median of {RUNS} runs each (wall clock; the machine may be shared)")
    for name, seconds in results.items():
        print(f"  {name:<26} {seconds * 1000:7.1f} ms   {seconds / baseline:5.2f}x qxdb --help")


if __name__ == "__main__":
    main()
