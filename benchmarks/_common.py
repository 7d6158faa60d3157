"""What every benchmark here shares: interleaved rounds, min/median/max, the machine's load.

Rules the benchmarks follow (issue 15): each comparison runs qxdb ("ours") and the best
baseline a user could write by hand in the same run, interleaved round by round (the order
rotates, so neither side always runs right after the other), for at least three rounds; it
prints min/median/max of each side and of the per-round ratio, and the load average before
and after. Ratios are times, ours / baseline: below 1 is faster than the baseline.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Comparison",
    "Sample",
    "ensure_database",
    "load",
    "plain_dsn",
    "print_header",
    "print_table",
    "quick",
    "rounds",
    "run_async",
    "run_sync",
    "time_commands",
]


def quick() -> bool:
    """``--quick`` (or QXDB_BENCH_QUICK=1): fewer rounds and smaller data, same checks."""
    import sys

    return "--quick" in sys.argv or os.environ.get("QXDB_BENCH_QUICK") == "1"


def rounds(full: int, fast: int = 3) -> int:
    return max(3, fast if quick() else full)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} cpus"


def print_header(title: str, baseline: str) -> None:
    print(f"## {title}")
    print(f"baseline: {baseline}")
    print(f"machine: {load()} at start; shared machine, compare ratios (same load for both)")


@dataclass
class Sample:
    values: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def fmt(self, scale: float = 1000.0, digits: int = 1) -> str:
        return "/".join(f"{v * scale:.{digits}f}" for v in (self.min, self.median, self.max))


@dataclass
class Comparison:
    """One line of a benchmark table: ours against a baseline, round by round."""

    name: str
    ours: Sample = field(default_factory=Sample)
    base: Sample = field(default_factory=Sample)
    unit: str = "ms"  # of the times shown: "ms" or "s"
    count: float | None = None  # items per run: adds a rate column
    per: str = "rows"  # what ``count`` counts
    target: str = ""  # what the issue asks for, shown next to the result
    verdict: bool | None = None

    @property
    def ratios(self) -> Sample:
        return Sample([o / b for o, b in zip(self.ours.values, self.base.values, strict=True)])

    def add(self, ours: float, base: float) -> None:
        self.ours.values.append(ours)
        self.base.values.append(base)

    def line(self) -> str:
        scale = 1000.0 if self.unit == "ms" else 1.0
        digits = 1 if self.unit == "ms" else 3
        out = (
            f"{self.name:<46} ours {self.ours.fmt(scale, digits):>22} {self.unit:<3}"
            f" base {self.base.fmt(scale, digits):>22} {self.unit:<3}"
            f" ratio {self.ratios.fmt(1.0, 2):>15}"
        )
        if self.count:
            rate = Sample([self.count / v for v in self.ours.values])
            base_rate = Sample([self.count / v for v in self.base.values])
            out += f"  {self.per}/s ours {rate.fmt(1.0, 0)} base {base_rate.fmt(1.0, 0)}"
        if self.target:
            mark = "" if self.verdict is None else (" met" if self.verdict else " MISSED")
            out += f"  [{self.target}{mark}]"
        return out


def print_table(lines: Sequence[Comparison], runs: int) -> None:
    print(f"min/median/max of {runs} interleaved rounds; ratio = ours / baseline time")
    for comparison in lines:
        print(comparison.line())
    print(f"machine: {load()} at end")


def run_sync(sides: Sequence[Callable[[], Any]], runs: int) -> list[list[float]]:
    """Seconds of each side per round, sides interleaved; the order rotates every round."""
    times: list[list[float]] = [[] for _ in sides]
    for r in range(runs):
        order = list(range(len(sides)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            started = time.perf_counter()
            sides[i]()
            times[i].append(time.perf_counter() - started)
    return times


async def run_async(
    sides: Sequence[Callable[[], Awaitable[Any]]],
    runs: int,
    between: Callable[[], Awaitable[Any]] | None = None,
) -> list[list[float]]:
    """:func:`run_sync` for coroutines; ``between`` (untimed) runs after each side."""
    times: list[list[float]] = [[] for _ in sides]
    for r in range(runs):
        order = list(range(len(sides)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            started = time.perf_counter()
            await sides[i]()
            times[i].append(time.perf_counter() - started)
            if between is not None:
                await between()
    return times


async def ensure_database(url: str) -> None:
    """Create the benchmark's own database on the server of ``url`` if it is missing."""
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        name = str(target.database)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            quoted = await conn.fetchval("SELECT quote_ident($1)", name)
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


def plain_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def time_commands(
    commands: dict[str, list[str]], runs: int, env: dict[str, str] | None = None
) -> dict[str, Sample]:
    """Whole-process wall time of each command, all interleaved round by round.

    One untimed warm-up run each first (the OS file cache, .pyc files); a command that
    fails stops the benchmark with its stderr.
    """
    import subprocess

    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", **(env or {})}

    def run(argv: list[str]) -> None:
        done = subprocess.run(argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")

    for argv in commands.values():
        run(argv)
    names = list(commands)
    sides = [lambda argv=commands[name]: run(argv) for name in names]
    times = run_sync(sides, runs)
    return {name: Sample(t) for name, t in zip(names, times, strict=True)}
