"""How fast does ``qxdb`` answer ``--help``? Median wall time against bare Typer and Alembic.

Every command is timed in the same run, interleaved round by round, so the ratios hold
even on a busy machine. Target: ``qxdb --help`` within 0.15 s (median).

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.15
BIN = Path(sys.executable).parent


def _commands() -> dict[str, list[str]]:
    qxdb = str(BIN / "qxdb")
    alembic = shutil.which("alembic", path=str(BIN)) or str(BIN / "alembic")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        "alembic --help": [alembic, "--help"],
        "qxdb --help": [qxdb, "--help"],
        "qxdb cursor --help": [qxdb, "cursor", "--help"],
        "qxdb migrate --help": [qxdb, "migrate", "--help"],
        "qxdb outbox --help": [qxdb, "outbox", "--help"],
    }


def _time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    commands = _commands()
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the OS file cache and the .pyc files
        _time_once(argv, env)
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(_time_once(argv, env))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    typer_base = medians['python -c "import typer"']
    alembic_base = medians["alembic --help"]
    print(f"median of {runs} runs (cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f})")
    print(f"{'command':<28}{'median s':>10}{'x typer':>10}{'x alembic':>11}")
    for name, median in medians.items():
        print(
            f"{name:<28}{median:>10.3f}{median / typer_base:>10.2f}{median / alembic_base:>11.2f}"
        )
    headline = medians["qxdb --help"]
    verdict = "ok" if headline <= TARGET_SECONDS else "SLOWER THAN TARGET"
    print(f"qxdb --help median {headline:.3f} s, target {TARGET_SECONDS:.2f} s: {verdict}")
    return 0 if headline <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
