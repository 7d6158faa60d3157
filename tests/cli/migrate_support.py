"""A throwaway service project for the ``qxdb migrate`` tests, and a way to run ``qxdb``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

QXDB = str(Path(sys.executable).with_name("qxdb"))
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
    cwd: Path,
    *args: str,
    url: str | None,
    program: str = QXDB,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("QX_DB__URL", None)
    if url is not None:
        env["QX_DB__URL"] = url
    return subprocess.run(
        [program, *args],
        cwd=cwd,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
