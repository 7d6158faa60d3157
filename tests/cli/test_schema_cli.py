"""``qxdb schema check`` and ``qxdb schema rules``, run as the real ``qxdb`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from qxdb.testing.plugin import run_coro
from tests.cli.conftest import run_qxdb

MODELS = """
from sqlalchemy import CHAR, Column, Integer, Table
from qxdb.mapping import make_metadata, standard_audit_columns, uuid_column
from qxdb.outbox.table import include_outbox_table

good = make_metadata()
Table("orders", good, uuid_column("id", primary_key=True), *standard_audit_columns())
include_outbox_table(good)

bad = make_metadata()
Table("legacy_orders", bad, Column("id", Integer, primary_key=True), *standard_audit_columns())

warn = make_metadata()
Table("codes", warn, uuid_column("id", primary_key=True), Column("code", CHAR(3)),
      *standard_audit_columns())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models.py").write_text(MODELS, encoding="utf-8")
    return tmp_path


def qxdb(*args: str, cwd: Path, url: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_qxdb(*args, cwd=cwd, url=url or None)


def test_clean_models_exit_0(project: Path) -> None:
    result = qxdb("schema", "check", "--metadata", "models:good", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: no findings (2 tables, 18 rules, metadata models:good)")
    assert result.stderr == "metadata: models:good\n"


def test_error_findings_exit_1_grouped_by_table(project: Path) -> None:
    result = qxdb("schema", "check", "--metadata", "models:bad", cwd=project)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "legacy_orders"
    assert lines[1] == "  error    QX001 pk-uuid-id: primary key id is INTEGER, not a UUID"
    assert lines[2].strip().startswith("hint: Declare the key with uuid_column")
    assert "QX013 no-serial-key" in result.stdout
    assert lines[-1].startswith("2 errors, 0 warnings in 1 table")


def test_warnings_only_exit_0(project: Path) -> None:
    result = qxdb("schema", "check", "--metadata", "models:warn", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "  warning  QX012 no-char: code is CHAR(3)" in result.stdout


def test_github_annotations(project: Path) -> None:
    result = qxdb("schema", "check", "--metadata", "models:bad", "--format", "github", cwd=project)
    assert result.returncode == 1
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert annotations[0] == (
        "::error file=models.py,title=QX001 pk-uuid-id (legacy_orders)::legacy_orders: "
        'primary key id is INTEGER, not a UUID. Hint: Declare the key with uuid_column("id"'
        ", primary_key=True)."
    )
    assert len(annotations) == 2


def test_json_is_one_document(project: Path) -> None:
    result = qxdb("schema", "check", "--metadata", "models:bad", "--json", cwd=project)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [f["rule_id"] for f in document["findings"]] == ["QX001", "QX013"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metadata", "models:nope"], "qxdb: error: 'models' has no attribute 'nope'"),
        (["--metadata", "nomodule:md"], "qxdb: error: cannot import 'nomodule'"),
        (["--metadata", "models"], "must look like 'package.module:metadata'"),
        (["--metadata", "models:good", "--rule", "QX999"], "unknown rule 'QX999' in --rule"),
        (["--metadata", "models:good", "--database"], "give --metadata or --database, not both"),
        (["--metadata", "models:good", "--config", "nope.toml"], "config file nope.toml not found"),
        (["--format", "xml"], "qxdb: error: Invalid value for '--format'"),
    ],
)
def test_bad_usage_exit_2(project: Path, args: list[str], message: str) -> None:
    result = qxdb("schema", "check", *args, cwd=project)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(error_lines) == 1
    assert message in error_lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys\nsys.exit(0)\n", "called sys.exit(0): a models module must not exit"),
        ("import sys\nsys.exit('bye')\n", "called sys.exit('bye')"),
        ("raise RuntimeError('no config')\n", "failed: RuntimeError: no config"),
        (
            "def __getattr__(name):\n    raise ValueError('lazy ' + name)\n",
            "reading 'metadata' of 'exiting' (--metadata exiting:metadata) failed: "
            "ValueError: lazy metadata",
        ),
    ],
)
@pytest.mark.parametrize("json_out", [False, True])
def test_a_models_module_that_exits_or_raises_is_one_error(
    project: Path, body: str, message: str, json_out: bool
) -> None:
    (project / "exiting.py").write_text(body)
    args = ["schema", "check", "--metadata", "exiting:metadata"]
    result = qxdb(*args, *(["--json"] if json_out else []), cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in result.stderr


async def _create(url: str, attribute: str, project: Path) -> None:
    sys.path.insert(0, str(project))
    try:
        import models  # type: ignore[import-not-found]

        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(getattr(models, attribute).create_all)
        finally:
            await engine.dispose()
    finally:
        sys.path.remove(str(project))
        sys.modules.pop("models", None)


def test_database_and_pyproject_configuration(project: Path) -> None:
    url = f"sqlite+aiosqlite:///{project / 'app.sqlite3'}"
    run_coro(_create(url, "bad", project))
    # Neither --metadata nor --database, and no metadata configured: the database.
    result = qxdb("schema", "check", cwd=project, url=url)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[0] == f"database: {url}"
    assert "legacy_orders" in result.stdout
    (project / "pyproject.toml").write_text(
        '[tool.qxdb.schema]\nmetadata = "models:good"\n\n'
        "[tool.qxdb.schema.ignore.legacy_orders]\n"
        'QX001 = "integer key until the migration"\nQX013 = "same"\n',
        encoding="utf-8",
    )
    configured = qxdb("schema", "check", cwd=project, url=url)
    assert configured.returncode == 0, configured.stderr
    assert configured.stderr == "metadata: models:good (from pyproject.toml)\n"
    database = qxdb("schema", "check", "--database", cwd=project, url=url)
    assert database.returncode == 0, database.stdout
    assert database.stdout.strip().endswith("; 2 ignored")


def test_live_postgresql_from_helper_models_is_clean(project: Path, postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    run_coro(_create(url, "good", project))
    result = qxdb("--database-url", url, "schema", "check", "--database", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("database: postgresql+asyncpg://")
    assert result.stdout.startswith("ok: no findings (2 tables, 25 rules, postgresql ")


def test_unreachable_database_exit_3_without_password(project: Path) -> None:
    url = "postgresql+asyncpg://app:s3cret-pw@127.0.0.1:1/app"
    result = qxdb("--database-url", url, "schema", "check", "--database", cwd=project)
    assert result.returncode == 3
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert result.stderr.splitlines()[-1].startswith("qxdb: error: cannot connect to ")


def test_rules_lists_every_rule(project: Path) -> None:
    listing = qxdb("schema", "rules", cwd=project)
    assert listing.returncode == 0
    assert "QX006  jsonb  error  [metadata, postgresql]" in listing.stdout
    document = json.loads(qxdb("schema", "rules", "--json", cwd=project).stdout)
    assert [r["id"] for r in document] == [f"QX{n:03d}" for n in range(1, 27)]
    assert all(r["rationale"] and r["hint"] for r in document)


def test_a_models_module_that_prints_leaves_stdout_to_the_json(project: Path) -> None:
    (project / "chatty.py").write_text(
        "print('hello from import')\nfrom models import good as metadata\n", encoding="utf-8"
    )
    result = qxdb("schema", "check", "--metadata", "chatty:metadata", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True  # one document, nothing before it
    assert "hello from import" in result.stderr
