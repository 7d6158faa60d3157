"""An exception no rule expects is a bug: exit 70 (EX_SOFTWARE), one line, a --debug hint.

Not exit 1 (the check found problems) and not exit 2 (bad input), which a stray internal
``ValueError`` used to get. The command runs for real; only the library call it makes is
replaced by one with a bug in it, as a broken release would have.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qxdb_cli.errors import EXIT_INTERNAL
from tests.cli.conftest import run_qxdb

_BROKEN_LIBRARY = """
import sys
import qxdb.doctor

async def diagnose(settings):
    raise {exc}

qxdb.doctor.diagnose = diagnose
from qxdb_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _run(tmp_path: Path, exc: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "broken.py"
    script.write_text(_BROKEN_LIBRARY.format(exc=exc))
    # doctor reads and never creates the embedded database file: give it one to read.
    sqlite3.connect(tmp_path / "qxdb.sqlite3").close()
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        ("ZeroDivisionError('division by zero')", "ZeroDivisionError: division by zero"),
        # A ValueError is not bad input unless qxdb says so (ValidationError).
        ("ValueError('invalid literal for int()')", "ValueError: invalid literal for int()"),
        ("KeyError('pool')", "KeyError: 'pool'"),
    ],
)
def test_an_internal_error_exits_70_with_one_line_and_a_hint(
    tmp_path: Path, exc: str, shown: str
) -> None:
    done = _run(tmp_path, exc, "doctor")
    assert done.returncode == EXIT_INTERNAL == 70, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        f"qxdb: error: internal error: {shown} "
        "(this is a bug; re-run with --debug for the traceback and report it)"
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    done = _run(tmp_path, "ZeroDivisionError('division by zero')", "--debug", "doctor")
    assert done.returncode == 70
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "qxdb: error: internal error: ZeroDivisionError: division by zero"
    )


def test_a_qxdb_error_keeps_its_own_exit_code(tmp_path: Path) -> None:
    done = _run(tmp_path, "__import__('qxdb').ValidationError('bad value')", "doctor")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "qxdb: error: bad value"


@pytest.mark.parametrize(
    ("argv", "env", "shown"),
    [
        (["cursor", "decode", "x"], {"QX_DB__CURSOR_MAX_AGE_SECONDS": "abc"}, "MAX_AGE"),
        (["cursor", "decode", "x"], {"QX_DB__CURSOR_PREVIOUS_SECRETS": "[1"}, "JSON list"),
        (["cursor", "encode", '{"id": 1}', "--secret", ""], {}, "must not be empty"),
        (["doctor"], {"QX_DB__POOL_SIZE": "many"}, "QX_DB__POOL_SIZE"),
        (["doctor"], {"QX_DB__OUTBOX_TABLE": "o" * 48}, "QX_DB__OUTBOX_TABLE"),
        (["doctor"], {"QX_DB__URL": "postgresql+asyncpg://a:s3cret@h:99999/x"}, "port 1-65535"),
    ],
)
def test_configuration_problems_are_bad_input_not_internal_errors(
    tmp_path: Path, argv: list[str], env: dict[str, str], shown: str
) -> None:
    done = run_qxdb(*argv, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("qxdb: error: ") and shown in line
    assert "internal error" not in line and "s3cret" not in done.stderr
