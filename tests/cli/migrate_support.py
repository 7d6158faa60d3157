"""A throwaway service project for the ``qxdb migrate`` tests, and a way to run ``qxdb``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from tests.cli.conftest import QXDB, run_qxdb

ALEMBIC = str(Path(sys.executable).with_name("alembic"))

MODELS = """
from sqlalchemy import Column, Numeric, String, Table

from qxdb.mapping import (
    jsonb_column, make_metadata, standard_audit_columns, timestamp_column, uuid_column,
)

metadata = make_metadata()

orders = Table(
    "orders",
    metadata,
    uuid_column("id", primary_key=True),
    Column("total", Numeric(12, 2), nullable=False),
    Column("note", String(200)),
    jsonb_column("data"),
    timestamp_column("placed_at"),
    *standard_audit_columns(),
)
"""


def make_project(root: Path, models: str = MODELS) -> str:
    """A project folder with a models package; returns the package's (unique) name."""
    package = f"svc_{uuid.uuid4().hex[:8]}"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "models.py").write_text(textwrap.dedent(models))
    return package


def run(
    cwd: Path, *args: str, url: str | None, program: str = QXDB
) -> subprocess.CompletedProcess[str]:
    return run_qxdb(*args, cwd=cwd, url=url, program=program)


def ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The run failed with ``code`` and said why in exactly one ``qxdb: error:`` line."""
    ok(proc, code)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]
