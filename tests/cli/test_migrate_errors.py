"""Bad input to ``qxdb migrate``: one clear line, the documented exit code, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qxdb.migrations import current, init_project, stamp
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.migrate_support import make_project, ok, one_error, run

UNREACHABLE = "postgresql+asyncpg://deploy:s3cret-pw@127.0.0.1:9/app"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    package = make_project(tmp_path)
    result = init_project(metadata=f"{package}.models:metadata", project_root=tmp_path)
    (result.directory / "versions" / "r1_empty.py").write_text(
        'revision = "r1"\ndown_revision = None\n\n\ndef upgrade() -> None:\n    pass\n\n\n'
        "def downgrade() -> None:\n    pass\n"
    )
    return tmp_path


def test_unknown_revision_exits_2(project: Path, sqlite_url: str) -> None:
    line = one_error(run(project, "migrate", "up", "nope", url=sqlite_url), 2)
    assert "'nope'" in line


def test_missing_metadata_module_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    proc = run(tmp_path, "migrate", "init", "--metadata", "nosuch.models:metadata", url=None)
    line = one_error(proc, 2)
    assert "cannot import 'nosuch.models'" in line
    assert not (tmp_path / "migrations").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys\nsys.exit(0)\n", "called sys.exit(0): a models module must not exit"),
        ("raise RuntimeError('no config')\n", "failed: RuntimeError: no config"),
        ("metadata = 42\n", "is not a SQLAlchemy MetaData"),
    ],
)
def test_a_models_module_that_cannot_serve_exits_2_and_writes_nothing(
    tmp_path: Path, body: str, message: str
) -> None:
    (tmp_path / "brokenmodels.py").write_text(body)
    proc = run(tmp_path, "migrate", "init", "--metadata", "brokenmodels:metadata", url=None)
    assert message in one_error(proc, 2)
    assert not (tmp_path / "migrations").exists()


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("bad \udcff byte", "not valid UTF-8"),  # the byte 0xff on the command line
        ("two\nlines", "one line of printable text"),
        ("bell \x07", "one line of printable text"),
        ('ends """ the docstring', 'cannot hold a backslash or """'),
        ("a \\N escape", "cannot hold a backslash"),
        ("   ", "needs a message"),
    ],
)
@pytest.mark.parametrize("command", ["revision", "merge"])
def test_a_message_that_cannot_be_a_docstring_exits_2_and_writes_nothing(
    project: Path, sqlite_url: str, message: str, says: str, command: str
) -> None:
    if command == "merge" and not message.strip():
        return  # merge has a default message
    versions = project / "migrations" / "versions"
    before = sorted(p.name for p in versions.iterdir())
    line = one_error(run(project, "migrate", command, "-m", message, url=sqlite_url), 2)
    assert says in line
    assert sorted(p.name for p in versions.iterdir()) == before


def test_a_plain_unicode_message_is_written(project: Path, sqlite_url: str) -> None:
    ok(run(project, "migrate", "revision", "-m", "añadir índice ünïcode", url=sqlite_url))
    written = [p for p in (project / "migrations" / "versions").glob("*.py") if "r1" not in p.name]
    assert len(written) == 1
    compile(written[0].read_text(), str(written[0]), "exec")
    assert "añadir índice ünïcode" in written[0].read_text()


def test_init_into_non_empty_folder_exits_2(project: Path) -> None:
    before = (project / "migrations" / "alembic.ini").read_text()
    line = one_error(run(project, "migrate", "init", "--metadata", "x.y:z", url=None), 2)
    assert "migrations already exists and is not empty" in line
    assert (project / "migrations" / "alembic.ini").read_text() == before


def test_unreachable_database_exits_3_without_password(project: Path) -> None:
    proc = run(project, "migrate", "current", url=UNREACHABLE)
    line = one_error(proc, 3)
    assert "cannot connect to postgresql+asyncpg://deploy:***@127.0.0.1:9/app" in line
    assert "s3cret-pw" not in proc.stderr + proc.stdout


def test_down_needs_a_target_and_a_yes_without_terminal(project: Path, sqlite_url: str) -> None:
    line = one_error(run(project, "migrate", "down", url=sqlite_url), 2)
    assert "down needs a target revision" in line

    config = project / "migrations" / "alembic.ini"
    settings = DatabaseSettings(url=sqlite_url)
    run_coro(stamp("r1", config=config, settings=settings))
    proc = run(project, "migrate", "down", "-1", url=sqlite_url)  # stdin is not a terminal
    assert "will undo 1 revision:" in proc.stdout
    assert "without a terminal to ask on: pass --yes" in one_error(proc, 2)
    state = run_coro(current(config=config, settings=settings))
    assert [r.revision for r in state.current] == ["r1"]


def test_no_config_found_exits_2(tmp_path: Path) -> None:
    line = one_error(run(tmp_path, "migrate", "heads", url=None), 2)
    assert "no migration config found" in line


def test_help_imports_neither_alembic_nor_sqlalchemy() -> None:
    probe = (
        "import sys\n"
        "from qxdb_cli.main import main\n"
        "for args in (['migrate', '--help'], ['migrate', 'up', '--help']):\n"
        "    main(args)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'sqlalchemy', 'asyncpg', 'mako'})\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert "Example: qxdb migrate up" in proc.stdout
