"""`qxdb doctor`, `--help` and `--version` as a new user runs them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from qxdb.testing.servers import ThrowawayPostgres, free_port
from tests.cli.conftest import run_qxdb


def test_version_and_help() -> None:
    version = run_qxdb("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("qxdb ")
    helped = run_qxdb("--help")
    assert helped.returncode == 0
    for group in ("doctor", "migrate", "outbox", "cursor", "schema"):
        assert group in helped.stdout


def test_doctor_on_the_embedded_default(tmp_path: Path) -> None:
    # No file: doctor says so and creates none (it used to leave an empty one behind).
    missing = run_qxdb("doctor", "--json", cwd=tmp_path)
    assert missing.returncode == 3, missing.stderr
    assert "no database at" in missing.stderr
    assert not (tmp_path / "qxdb.sqlite3").exists()
    (tmp_path / "qxdb.sqlite3").touch()
    result = run_qxdb("doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dialect"] == "sqlite"
    assert report["url_is_default"] is True
    assert "embedded SQLite default" in result.stderr
    human = run_qxdb("doctor", cwd=tmp_path)
    assert human.returncode == 0
    assert "sqlite" in human.stdout


def test_doctor_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    result = run_qxdb("--database-url", postgres_url, "doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dialect"] == "postgresql"
    assert report["server_version"]
    assert report["statement_timeout_ms"] == 10000
    assert report["outbox_table_exists"] is False
    assert "embedded" not in result.stderr


def test_unreachable_database_exits_3_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://app:topsecret77@127.0.0.1:{free_port()}/app"
    result = run_qxdb("--database-url", url, "doctor", cwd=tmp_path)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1
    assert "cannot connect" in errors[0]
    assert "Traceback" not in result.stderr
    assert "topsecret77" not in result.stderr + result.stdout
    # The environment variable path behaves the same.
    via_env = run_qxdb("doctor", "--json", cwd=tmp_path, env={"QX_DB__URL": url})
    assert via_env.returncode == 3
    assert via_env.stdout == ""
    assert "topsecret77" not in via_env.stderr


def test_wrong_password_exits_3_without_leaking_it(
    password_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    good = password_postgres.url
    assert run_qxdb("--database-url", good, "doctor", cwd=tmp_path).returncode == 0
    bad = good.replace("correct-horse-9", "wrong-horse-42")
    result = run_qxdb("--database-url", bad, "doctor", cwd=tmp_path)
    assert result.returncode == 3
    assert "password authentication failed" in result.stderr
    assert "wrong-horse-42" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_bad_usage_and_bad_settings_exit_2(tmp_path: Path) -> None:
    unknown = run_qxdb("doctor", "--bogus", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("qxdb: error:")
    bad_setting = run_qxdb("doctor", cwd=tmp_path, env={"QX_DB__POOL_SIZE": "lots"})
    assert bad_setting.returncode == 2
    assert "QX_DB__POOL_SIZE" in bad_setting.stderr
    bad_driver = run_qxdb("--database-url", "nosuchdb://x/y", "doctor", cwd=tmp_path)
    assert bad_driver.returncode == 2, bad_driver.stderr
    assert "Traceback" not in bad_driver.stderr


def test_doctor_warns_when_cursors_are_unsigned(tmp_path: Path) -> None:
    # doctor reads and never creates the embedded database file: give it one to read.
    sqlite3.connect(tmp_path / "qxdb.sqlite3").close()
    unsigned = run_qxdb("doctor", cwd=tmp_path)
    assert unsigned.returncode == 0, unsigned.stderr
    assert "warning: cursors unsigned (no QX_DB__CURSOR_SECRET)" in unsigned.stderr
    assert "unsigned" in unsigned.stdout
    as_json = json.loads(run_qxdb("doctor", "--json", cwd=tmp_path).stdout)
    assert as_json["cursors_signed"] is False
    assert any("cursors unsigned" in w for w in as_json["warnings"])
    signed = run_qxdb("doctor", "--json", cwd=tmp_path, env={"QX_DB__CURSOR_SECRET": "s3cret"})
    report = json.loads(signed.stdout)
    assert (report["cursors_signed"], report["warnings"]) == (True, [])
    assert "s3cret" not in signed.stdout + signed.stderr
    assert "warning" not in signed.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_hosting_providers_url_with_libpq_options_works(
    postgres_url: str, tmp_path: Path
) -> None:
    url = "postgres://" + postgres_url.split("://", 1)[1].partition("?")[0]
    options = "?sslmode=disable&connect_timeout=5&application_name=shop"
    result = run_qxdb("--database-url", url + options, "doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dialect"] == "postgresql"
    bogus = run_qxdb("--database-url", url + "?ssl=bogus", "doctor", cwd=tmp_path)
    assert "option 'ssl'" in _one_error_line(bogus)


def test_bad_urls_exit_2_without_echoing_the_password(tmp_path: Path) -> None:
    # A byte that is not UTF-8 (as a shell passes it) in the password, then in the user.
    for url in (
        "postgresql+asyncpg://app:pw\udcffsecret77@127.0.0.1:5432/app",
        "postgresql+asyncpg://ap\udcffp:pwsecret77@127.0.0.1:5432/app",
    ):
        line = _one_error_line(run_qxdb("--database-url", url, "doctor", cwd=tmp_path))
        assert "not UTF-8" in line
        assert "secret77" not in line
    # A URL missing its ":" still has a password to hide.
    malformed = run_qxdb("--database-url", "postgresql//u:secretpw@h/db", "doctor", cwd=tmp_path)
    assert "u:***@h/db" in _one_error_line(malformed)
    assert "secretpw" not in malformed.stderr + malformed.stdout


def test_a_timeout_beyond_postgresqls_maximum_exits_2(tmp_path: Path) -> None:
    for variable in ("QX_DB__STATEMENT_TIMEOUT_MS", "QX_DB__LOCK_TIMEOUT_MS"):
        result = run_qxdb("doctor", cwd=tmp_path, env={variable: "2147483648"})
        assert variable in _one_error_line(result)
