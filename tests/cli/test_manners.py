"""The command's manners, swept over every command as a demanding user meets them.

Bad input: one ``qxdb: error:`` line on stderr, exit 2, nothing on stdout. An unreachable
database: exit 3, its password nowhere. ``NO_COLOR`` and the embedded SQLite default said
plainly. The cases marked "was" each failed before the release review.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from qxdb.testing.servers import free_port
from tests.cli.conftest import QXDB, run_qxdb

SECRET = "S3cretPw"
UUID = "0193a1b2-7c4d-7e5f-8a9b-0c1d2e3f4a5b"


def _assert_one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with models, initialised migrations and an embedded database with an outbox."""
    from sqlalchemy import MetaData, create_engine

    from qxdb.outbox.table import include_outbox_table

    root = tmp_path_factory.mktemp("manners")
    (root / "models.py").write_text("from sqlalchemy import MetaData\n\nmetadata = MetaData()\n")
    (root / "untidy.py").write_text(
        "from sqlalchemy import Column, Integer, MetaData, Table\n\n"
        "metadata = MetaData()\nTable('Things', metadata, Column('n', Integer))\n"
    )
    init = run_qxdb("migrate", "init", "--metadata", "models:metadata", cwd=root)
    assert init.returncode == 0, init.stderr
    metadata = MetaData()
    include_outbox_table(metadata)
    engine = create_engine(f"sqlite:///{root / 'qxdb.sqlite3'}")
    metadata.create_all(engine)
    engine.dispose()
    return root


UNREACHABLE = [
    ["doctor", "--json"],
    ["demo", "--dir", "demo"],
    ["migrate", "current", "--json"],
    ["migrate", "check", "--json"],
    ["migrate", "up"],
    ["migrate", "down", "-1", "--yes"],
    ["migrate", "stamp", "head"],
    ["migrate", "revision", "-m", "x", "--autogenerate"],
    ["outbox", "inspect", "--json"],
    ["outbox", "show", UUID],
    ["outbox", "stats", "--json"],
    ["outbox", "replay", "--status", "failed", "--yes", "--json"],
    ["outbox", "purge", "--older-than", "7d", "--yes", "--json"],
    ["outbox", "relay", "--once", "--json"],
    ["schema", "check", "--database", "--json"],
]


@pytest.mark.parametrize("argv", UNREACHABLE, ids=" ".join)
def test_unreachable_database_exits_3_without_the_password(
    argv: list[str], project: Path, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://app:{SECRET}@127.0.0.1:{free_port()}/x"
    cwd = tmp_path if argv[0] == "demo" else project
    result = run_qxdb("--database-url", url, *argv, cwd=cwd)
    line = _assert_one_error_line(result, 3)
    assert "cannot connect" in line
    assert SECRET not in result.stdout + result.stderr
    assert "database: postgresql+asyncpg://app:***@127.0.0.1" in result.stderr
    if "--json" in argv:
        assert result.stdout == ""


BAD_INPUT = [
    (["--bogus"], {}),
    (["doctor", "extra"], {}),
    (["demo", "--orders", "0"], {}),
    (["migrate", "init"], {}),
    (["migrate", "init", "--metadata", "nosuch.mod:md", "m2"], {}),
    (["migrate", "revision"], {}),
    (["migrate", "up", "--lock-timeout", "soon"], {}),
    (["migrate", "down"], {}),
    (["migrate", "history", "--config", "missing.ini"], {}),
    (["outbox", "inspect", "--status", "bogus"], {}),
    (["outbox", "inspect", "--since", "2026-11-27T10:00:00"], {}),
    (["outbox", "inspect", "--tenant", "not-a-uuid"], {}),
    (["outbox", "show", "nope"], {}),
    (["outbox", "purge", "--older-than", "7x"], {}),
    (["outbox", "replay"], {}),
    (["cursor", "decode", "garbage"], {}),
    (["cursor", "encode", "{"], {}),
    (["schema", "check", "--format", "xml"], {}),
    (["schema", "rules", "--bogus"], {}),
    # was: two stderr lines (the metadata was named before it failed to import)
    (["schema", "check", "--metadata", "nosuch:md"], {}),
    # was: exit 3, "cannot reach NATS" for a URL no broker could have
    (["outbox", "relay", "--once", "--nats-url", "bogus://"], {}),
    # a cluster is a comma-separated list; one bad server in it is bad input
    (["outbox", "relay", "--once", "--nats-url", "nats://a:1,bogus://b:2"], {}),
    # was: exit 3, a JetStream ValueError after connecting
    (["outbox", "relay", "--once", "--stream", "bad stream"], {}),
    # was: exit 1, OverflowError: date value out of range
    (["outbox", "inspect", "--since", "999999999d"], {}),
    (["outbox", "purge", "--older-than", "1000000d", "--dry-run"], {}),
    # was: exit 1, PermissionError/NotADirectoryError with a Python class name
    (["migrate", "init", "--metadata", "models:metadata", "models.py/sub"], {}),
    # was: "ValueError: invalid literal for int()" after naming a blank database
    (["doctor"], {"QX_DB__URL": f"postgresql+asyncpg://app:{SECRET}@127.0.0.1:port/x"}),
    (["doctor"], {"QX_DB__URL": "  "}),
]


def _label(argv: list[str], env: dict[str, str]) -> str:
    url = env.get("QX_DB__URL")
    shown = "" if url is None else " QX_DB__URL=" + ("blank" if not url.strip() else "bad port")
    return " ".join(argv) + shown


@pytest.mark.parametrize(("argv", "env"), BAD_INPUT, ids=[_label(a, e) for a, e in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], env: dict[str, str], project: Path
) -> None:
    result = run_qxdb(*argv, cwd=project, env=env)
    _assert_one_error_line(result, 2)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert SECRET not in result.stderr


def test_a_nats_token_never_shows(project: Path) -> None:
    # nats://TOKEN@host is NATS token auth: the "user" part is the secret. (was: printed)
    result = run_qxdb(
        "outbox",
        "relay",
        "--once",
        "--nats-url",
        f"nats://{SECRET}@127.0.0.1:{free_port()}",
        cwd=project,
    )
    line = _assert_one_error_line(result, 3)
    assert "nats://***@127.0.0.1" in line
    assert SECRET not in result.stdout + result.stderr


def test_a_bare_group_shows_its_help_not_an_error() -> None:
    result = run_qxdb("migrate")
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: qxdb migrate")
    assert "qxdb: error:" not in result.stderr


def test_the_default_database_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    # A reading command never creates the embedded file: it says there is none (was: an
    # empty qxdb.sqlite3 left behind by every stats, doctor or migrate current).
    result = run_qxdb("outbox", "stats", "--json", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert f"no database at {tmp_path.resolve() / 'qxdb.sqlite3'}" in first
    assert "embedded SQLite default" in first
    assert "QX_DB__URL is not set" in first
    assert not (tmp_path / "qxdb.sqlite3").exists()
    empty = run_qxdb("outbox", "stats", "--json", cwd=tmp_path, env={"QX_DB__URL": ""})
    assert "QX_DB__URL is empty" in empty.stderr.splitlines()[0]
    # Once the file exists, it is named by its absolute path.
    (tmp_path / "qxdb.sqlite3").touch()
    named = run_qxdb("outbox", "stats", "--json", cwd=tmp_path)
    assert named.returncode == 2  # the empty file has no outbox table
    first = named.stderr.splitlines()[0]
    assert f"embedded SQLite default {tmp_path.resolve() / 'qxdb.sqlite3'}" in first


def test_the_default_database_in_a_folder_it_cannot_use(tmp_path: Path) -> None:
    # A folder where the file should be: SQLite cannot open ./qxdb.sqlite3. (was: now and
    # then a second traceback from aiosqlite's worker thread after the one error line)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "qxdb.sqlite3").mkdir()
    result = run_qxdb("doctor", "--json", cwd=blocked)
    _assert_one_error_line(result, 3)
    assert result.stdout == ""


def _on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> bytes:
    leader, follower = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    base.pop("NO_COLOR", None)
    try:
        subprocess.run(
            [QXDB, *argv],
            cwd=cwd,
            env={**base, **env},
            stdout=follower,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(leader)


def test_no_color_means_no_escape_codes_on_a_terminal(project: Path) -> None:
    # was: Rich's no_color still sent bold, so table names carried escape codes.
    argv = ["schema", "check", "--metadata", "untidy:metadata"]
    styled = _on_a_terminal(argv, project, {"TERM": "xterm-256color"})
    assert b"\x1b[" in styled  # without NO_COLOR a terminal does get styles
    plain = _on_a_terminal(argv, project, {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert b"\x1b[" not in plain
    assert b"Things" in plain


def test_cursor_errors_say_what_to_give() -> None:
    # was: "a: unknown type None" and a bare "Invalid value: no cursor on stdin"
    untyped = run_qxdb("cursor", "encode", '{"a": {"b": 1}}')
    assert '"type" and "value"' in _assert_one_error_line(untyped, 2)
    empty = run_qxdb("cursor", "decode", "-", input="")
    assert _assert_one_error_line(empty, 2) == (
        "qxdb: error: Invalid value for '-': no cursor on stdin"
    )
