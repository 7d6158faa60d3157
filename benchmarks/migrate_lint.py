"""``qxdb migrate lint`` on 200 revisions, with no database.

Run: ``python benchmarks/migrate_lint.py``. A throwaway Alembic project gets 200 chained
revisions in the shapes real projects have (tables created with their indexes, columns
added, indexes built concurrently in autocommit blocks, constraints added NOT VALID and
validated later, raw SQL, a data backfill), some of which the rules flag.

Target: linting all 200 revisions takes under 2 s. Baseline measured in the same run,
interleaved: Alembic's own offline SQL for the same revisions (``alembic upgrade head
--sql``), which is the first half of what gluing squawk to Alembic costs before squawk
even starts. Also reported: the whole ``qxdb migrate lint --all`` command, process start
included, and the imports alone (a process that imports the command and the linter and
exits), so the command's figure can be split into start-up and linting.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REVISIONS = 200
RUNS = 5

ENV_PY = """
from alembic import context

context.configure(url="postgresql://", literal_binds=True, dialect_opts={"paramstyle": "named"})
with context.begin_transaction():
    context.run_migrations()
"""

SHAPES = [
    """
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "t{n}",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()")),
    )
    op.create_index("ix_t{n}_name", "t{n}", ["name"])
""",
    """
    op.execute("SET lock_timeout = '5s'")
    op.add_column("t{p}", sa.Column("note_{n}", sa.Text()))
    with op.get_context().autocommit_block():
        op.create_index("ix_t{p}_note_{n}", "t{p}", ["note_{n}"], postgresql_concurrently=True)
""",
    """
    op.execute("SET lock_timeout = '5s'")
    op.create_check_constraint(
        "ck_t{p}_name_{n}", "t{p}", "length(name) < 500", postgresql_not_valid=True
    )
    op.execute("ALTER TABLE t{p} VALIDATE CONSTRAINT ck_t{p}_name_{n}")
""",
    """
    op.add_column("t{p}", sa.Column("flag_{n}", sa.Boolean(), nullable=False))
    op.create_index("ix_t{p}_flag_{n}", "t{p}", ["flag_{n}"])
""",
    """
    op.execute("SET lock_timeout = '5s'")
    op.execute("UPDATE t{p} SET name = lower(name) WHERE id BETWEEN 1 AND 10000")
""",
]


def write_project(root: Path, revisions: int = REVISIONS) -> Path:
    versions = root / "versions"
    versions.mkdir(parents=True)
    (root / "env.py").write_text(ENV_PY)
    (root / "script.py.mako").write_text("")
    ini = root / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {root}\n")
    for n in range(revisions):
        shape = SHAPES[0] if n < 5 else SHAPES[n % len(SHAPES)]
        body = shape.format(n=n, p=n % 5)
        down = repr(f"r{n - 1:04d}") if n else "None"
        (versions / f"r{n:04d}.py").write_text(
            f'"""revision {n}"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f'revision = "r{n:04d}"\ndown_revision = {down}\n'
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:{body}\n"
        )
    return ini


def lint_all(ini: Path) -> Any:
    from qxdb.migrations.lint import lint_revisions

    return lint_revisions(config=ini, all_revisions=True)


def alembic_offline_sql(ini: Path) -> str:
    from alembic import command
    from alembic.config import Config

    buffer = io.StringIO()
    command.upgrade(Config(str(ini), output_buffer=buffer), "head", sql=True)
    return buffer.getvalue()


def cli(ini: Path) -> int:
    qxdb = str(Path(sys.executable).with_name("qxdb"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    proc = subprocess.run(
        [qxdb, "migrate", "lint", "--all", "-c", str(ini), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode


def imports_only() -> int:
    """What the command pays before linting anything: Python, Typer, Alembic, SQLAlchemy."""
    code = "import qxdb_cli.main, qxdb.migrations.lint.linter"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode


def spread(times: list[float]) -> str:
    return (
        f"min {min(times):.3f} s  median {statistics.median(times):.3f} s  max {max(times):.3f} s"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ini = write_project(Path(tmp) / "migrations")
        report = lint_all(ini)  # warm imports once; every timed run re-reads the revisions
        alembic_offline_sql(ini)
        cases: dict[str, Callable[[], Any]] = {
            "qxdb lint (in-process)": lambda: lint_all(ini),
            "alembic upgrade --sql (baseline)": lambda: alembic_offline_sql(ini),
            "qxdb migrate lint --all (command)": lambda: cli(ini),
            "  of which imports (python -c import)": imports_only,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(RUNS):  # interleaved, so a burst of load hits every case alike
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    print(f"{REVISIONS} revisions, {len(report.findings)} findings, {RUNS} interleaved runs")
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores, shared machine)")
    for name, measured in times.items():
        print(f"{name:<36} {spread(measured)}")
    lint_median = statistics.median(times["qxdb lint (in-process)"])
    base_median = statistics.median(times["alembic upgrade --sql (baseline)"])
    command_median = statistics.median(times["qxdb migrate lint --all (command)"])
    print(f"ratio lint / alembic offline SQL: {lint_median / base_median:.2f}")
    import_median = statistics.median(times["  of which imports (python -c import)"])
    print(f"command minus imports: {command_median - import_median:.3f} s (median)")
    verdict = "met" if lint_median < 2.0 else "NOT met"
    print(f"target: 200 revisions linted in < 2 s with no database (in-process): {verdict}")
    whole = "met" if command_median < 2.0 else "NOT met"
    print(f"the whole command, process start included, in < 2 s: {whole}")


if __name__ == "__main__":
    main()
