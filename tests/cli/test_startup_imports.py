"""``--help`` must not pay for SQLAlchemy, Alembic or a driver: startup stays close to Typer.

Each case runs in a fresh interpreter (imports are process-wide), calls the command's own
``main(argv)`` and then lists every module that got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# rich too: command modules import it inside the commands, and help is plain Click
# (qxdb_cli.main sets rich_markup_mode=None), so help never needs it.
HEAVY = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite", "nats", "rich")

_PROBE = """
import contextlib, io, json, sys
from qxdb_cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as shown:
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "help": shown.getvalue(), "modules": sorted(sys.modules)}))
"""


def _modules_after(argv: list[str], cwd: Path | None = None) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == 0, result
    return result["help"], set(result["modules"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["migrate", "--help"],
        ["outbox", "--help"],
        ["schema", "--help"],
        ["cursor", "--help"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_help_imports_no_database_stack(argv: list[str]) -> None:
    shown, modules = _modules_after(argv)
    assert "Usage: qxdb" in shown
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"qxdb {' '.join(argv)} imported {heavy}"


def test_the_probe_sees_heavy_imports_when_they_happen(tmp_path: Path) -> None:
    # A command that does touch the (embedded) database must show up, or the test above
    # could never fail.
    (tmp_path / "qxdb.sqlite3").touch()  # reading commands never create the file
    _, modules = _modules_after(["doctor", "--json"], cwd=tmp_path)
    assert {"sqlalchemy", "aiosqlite"} <= modules
