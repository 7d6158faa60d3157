"""Review fixes in ``migrate``: the DDL lock timeout's range, ``down --dry-run``, and the
forgotten-``QX_DB__URL`` guard under plain ``alembic`` (the rule lives in the library)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qxdb.errors import ConfigurationError, ValidationError
from qxdb.migrations import (
    MAX_DDL_LOCK_TIMEOUT,
    check_ddl_lock_timeout,
    current,
    init_project,
    refuse_unchosen_default,
    stamp,
    upgrade,
)
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import QXDB
from tests.cli.migrate_support import make_project, ok, one_error, run

ALEMBIC = str(Path(QXDB).with_name("alembic"))
R1 = (
    'revision = "r1"\ndown_revision = None\n\n\ndef upgrade() -> None:\n    pass\n\n\n'
    "def downgrade() -> None:\n    pass\n"
)


def _project(root: Path, dialect: str = "sqlite") -> Path:
    package = make_project(root)
    result = init_project(metadata=f"{package}.models:metadata", project_root=root, dialect=dialect)
    (result.directory / "versions" / "r1_empty.py").write_text(R1)
    return result.directory / "alembic.ini"


def _heads(config: Path, url: str) -> list[str]:
    state = run_coro(current(config=config, settings=DatabaseSettings(url=url)))
    return [r.revision for r in state.current]


# -- --ddl-lock-timeout: finite, 0 .. 2,147,483.647 s (PostgreSQL's int4 of ms) ------------


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0, 1e300, 2_147_483.648])
def test_library_refuses_a_ddl_lock_timeout_postgresql_cannot_take(bad: float) -> None:
    with pytest.raises(ValidationError, match=r"DDL lock timeout must be 0 to 2,147,483\.647"):
        check_ddl_lock_timeout(bad)
    settings = DatabaseSettings(url="sqlite+aiosqlite:////nonexistent/never-opened.sqlite3")
    with pytest.raises(ValidationError):  # refused before anything connects
        run_coro(upgrade(config=Path("/nonexistent.ini"), settings=settings, ddl_lock_timeout=bad))


def test_library_accepts_the_bounds() -> None:
    for good in (None, 0, 0.5, MAX_DDL_LOCK_TIMEOUT):
        check_ddl_lock_timeout(good)
    with pytest.raises(ValidationError, match="number of seconds"):
        check_ddl_lock_timeout("5")  # type: ignore[arg-type]


def test_command_refuses_out_of_range_ddl_lock_timeouts(tmp_path: Path, db_url: str) -> None:
    config = _project(tmp_path)
    for bad in ("inf", "nan", "-1", "1e300", "2147483.648"):
        for argv in (["up"], ["down", "base", "--yes"]):
            line = one_error(
                run(tmp_path, "migrate", *argv, "--ddl-lock-timeout", bad, url=db_url), 2
            )
            assert "DDL lock timeout must be 0 to 2,147,483.647 seconds" in line, (argv, bad)
    assert _heads(config, db_url) == []
    # The largest value PostgreSQL takes is accepted, and used.
    ok(run(tmp_path, "migrate", "up", "--ddl-lock-timeout", "2147483.647", url=db_url))
    assert _heads(config, db_url) == ["r1"]


# -- down --dry-run --------------------------------------------------------------------------


def test_down_dry_run_shows_the_plan_and_changes_nothing(tmp_path: Path, db_url: str) -> None:
    config = _project(tmp_path)
    run_coro(stamp("r1", config=config, settings=DatabaseSettings(url=db_url)))
    # No --yes and no terminal: a dry run asks nothing.
    proc = ok(run(tmp_path, "migrate", "down", "-1", "--dry-run", url=db_url))
    assert "would undo 1 revision:" in proc.stdout
    assert "r1" in proc.stdout
    assert "dry run: nothing was changed" in proc.stderr
    assert _heads(config, db_url) == ["r1"]
    # Bad input is still refused under --dry-run.
    one_error(run(tmp_path, "migrate", "down", "nope", "--dry-run", url=db_url), 2)
    assert _heads(config, db_url) == ["r1"]


# -- a forgotten QX_DB__URL under plain alembic -------------------------------------------


def test_refuse_unchosen_default_is_one_library_rule(tmp_path: Path) -> None:
    config = _project(tmp_path, dialect="postgresql")
    default = DatabaseSettings(url=None)
    with pytest.raises(ConfigurationError, match="this project is for postgresql"):
        refuse_unchosen_default(default, config, cwd=tmp_path)
    chosen = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    refuse_unchosen_default(chosen, config, cwd=tmp_path)  # a URL the user chose passes
    sqlite_project = tmp_path / "other"
    sqlite_project.mkdir()
    refuse_unchosen_default(default, _project(sqlite_project), cwd=sqlite_project)


def test_plain_alembic_refuses_the_embedded_default_in_a_postgresql_project(
    tmp_path: Path, sqlite_url: str
) -> None:
    _project(tmp_path, dialect="postgresql")
    for argv in (["upgrade", "head"], ["upgrade", "head", "--sql"], ["stamp", "head"]):
        proc = run(tmp_path, "-c", "migrations/alembic.ini", *argv, url=None, program=ALEMBIC)
        assert proc.returncode != 0, (argv, proc.stdout, proc.stderr)
        assert "QX_DB__URL is not set and this project is for postgresql" in proc.stderr
        assert "CREATE TABLE" not in proc.stdout
        assert not list(tmp_path.rglob("*.sqlite3")), argv
    # A URL given explicitly is used, whatever the project records.
    ok(
        run(
            tmp_path,
            "-c",
            "migrations/alembic.ini",
            "-x",
            f"database_url={sqlite_url}",
            "upgrade",
            "head",
            url=None,
            program=ALEMBIC,
        )
    )
    assert _heads(tmp_path / "migrations" / "alembic.ini", sqlite_url) == ["r1"]
