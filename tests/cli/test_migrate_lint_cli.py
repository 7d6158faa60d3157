"""``qxdb migrate lint`` as a user runs it: the real command, the corpus, real databases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from tests.cli.conftest import run_qxdb
from tests.cli.migrate_support import make_project, ok, one_error, run

REPO = Path(__file__).resolve().parents[2]
CORPUS_INI = REPO / "tests" / "lint_corpus" / "alembic.ini"
VERSIONS = CORPUS_INI.parent / "versions"
SARIF_SCHEMA = REPO / "tests" / "data" / "sarif-schema-2.1.0.json"


def lint(cwd: Path, *args: str, url: str | None = None, code: int = 0) -> str:
    return ok(run(cwd, "migrate", "lint", "-c", str(CORPUS_INI), *args, url=url), code).stdout


def test_table_output_names_rule_line_lock_and_recipe(tmp_path: Path) -> None:
    out = lint(tmp_path, "--all", code=1)
    assert re.search(r"^qxm001_fires  .*qxm001_fires\.py", out, re.M)
    assert "  line 15   error   QXM001 create-index-not-concurrently: " in out
    assert "locks: SHARE lock on the table" in out
    assert "safe:  create it in `with op.get_context().autocommit_block():`" in out
    assert "ignored: qxm012_safe line 16 QXM012 drop-column (the app stopped reading" in out
    assert re.search(
        r"^\d+ errors, \d+ warnings in \d+ of 54 revisions \(all\); 3 ignored$", out, re.M
    )


def test_json_and_exit_codes(tmp_path: Path) -> None:
    document = json.loads(lint(tmp_path, "qxm004_fires", "--json", code=1))
    assert document["ok"] is False
    assert document["selection"] == "qxm004_fires"
    (finding,) = document["findings"]
    assert finding["rule_id"] == "QXM004"
    assert finding["severity"] == "error"
    assert finding["line"] == 15
    assert finding["path"].endswith("qxm004_fires.py")
    assert "postgresql_not_valid=True" in finding["recipe"]
    assert document["failed"] is True
    # Clean: exit 0. A warning fails too, unless --fail-on error (or fail-on in the config).
    assert "ok: no findings (1 revision, qxm004_safe)" in lint(tmp_path, "qxm004_safe")
    assert "warning QXM022 missing-lock-timeout" in lint(tmp_path, "qxm022_fires", code=1)
    passed = json.loads(lint(tmp_path, "qxm022_fires", "--fail-on", "error", "--json"))
    assert (passed["ok"], passed["failed"], passed["counts"]["warning"]) == (False, False, 1)


def test_github_annotations_point_at_the_revision_file() -> None:
    out = ok(
        run(
            REPO, "migrate", "lint", "-c", str(CORPUS_INI), "--all", "--format", "github", url=None
        ),
        1,
    ).stdout
    assert (
        "::error file=tests/lint_corpus/versions/qxm001_fires.py,line=15,"
        "title=QXM001 create-index-not-concurrently::index created without CONCURRENTLY"
    ) in out
    assert "::warning file=tests/lint_corpus/versions/qxm012_fires.py,line=15," in out
    assert out.splitlines()[-1].endswith("ignored")


def test_sarif_validates_against_the_sarif_2_1_0_schema() -> None:
    proc = ok(
        run(REPO, "migrate", "lint", "-c", str(CORPUS_INI), "--all", "--format", "sarif", url=None),
        1,
    )
    document = json.loads(proc.stdout)
    jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()))
    results = document["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {f"QXM0{n:02d}" for n in range(1, 26)} - {"QXM019"}


def test_config_and_flags(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.qxdb.lint]\nfail-on = "error"\n[tool.qxdb.lint.rules]\nQXM001 = "off"\n'
    )
    assert "ok: no findings" in lint(tmp_path, "qxm001_fires")
    assert "1 warning" in lint(tmp_path, "qxm013_fires")  # fail-on = "error": exit 0
    assert "ok: no findings" in lint(tmp_path, "qxm002_fires", "--ignore", "QXM002")
    assert "QXM019 varchar-length" in lint(
        tmp_path, "qxm019_fires", "--rule", "varchar-length", "--fail-on", "warning", code=1
    )


def test_the_rules_are_listed() -> None:
    proc = ok(run_qxdb("migrate", "lint-rules", "--json"))
    rules = json.loads(proc.stdout)
    assert [r["id"] for r in rules] == [f"QXM{n:03d}" for n in range(1, 26)]
    assert rules[18]["severity"] == "off"  # QXM019
    assert all(r["recipe"] and r["locks"] and r["why"] for r in rules)


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    # (Unknown rules, missing files and config files: tests/lint; here, that they exit 2.)
    def bad(*args: str) -> str:
        return one_error(run(tmp_path, "migrate", "lint", *args, url=None), 2)

    assert "no_such" in bad("-c", str(CORPUS_INI), "no_such")
    assert "give one of" in bad("-c", str(CORPUS_INI), "--all", "--since", "qxm001_fires")
    (tmp_path / "pyproject.toml").write_text('[tool.qxdb.lint.rules]\nQXM001 = "loud"\n')
    assert "QXM001" in bad("-c", str(CORPUS_INI), "--all")
    assert run(tmp_path, "migrate", "lint", "--format", "nope", url=None).returncode == 2


def test_single_files_need_no_project(tmp_path: Path) -> None:
    out = ok(
        run(tmp_path, "migrate", "lint", "--file", str(VERSIONS / "qxm007_fires.py"), url=None), 1
    ).stdout
    assert "QXM007 not-null-column-without-default" in out
    clean = run(tmp_path, "migrate", "lint", "--file", str(VERSIONS / "qxm007_safe.py"), url=None)
    assert "ok: no findings" in ok(clean).stdout


def test_no_database_configured_lints_everything_and_says_so(tmp_path: Path) -> None:
    proc = ok(run(tmp_path, "migrate", "lint", "-c", str(CORPUS_INI), "--json", url=None), 1)
    assert "no database configured (QX_DB__URL unset): linted all 54 revision(s)" in proc.stderr
    document = json.loads(proc.stdout)
    assert document["counts"]["revisions"] == 54
    assert document["note"].startswith("no database configured")
    assert not (tmp_path / "qxdb.sqlite3").exists()  # no embedded database was made


def test_unreachable_database_exits_3_and_says_how_to_lint_without_it(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
    line = one_error(run(tmp_path, "migrate", "lint", "-c", str(CORPUS_INI), url=url), 3)
    assert "--all or --since REV" in line


def test_default_lints_the_pending_revisions(postgres_url: str, tmp_path: Path) -> None:
    package = make_project(tmp_path)

    def qxdb(*args: str, code: int = 0) -> str:
        return ok(run(tmp_path, *args, url=postgres_url), code).stdout

    qxdb("migrate", "init", "--metadata", f"{package}.models:metadata")
    qxdb("migrate", "revision", "-m", "create orders", "--autogenerate")
    # The template's first revision, autogenerated on PostgreSQL: nothing to report.
    assert "ok: no findings" in qxdb("migrate", "lint")
    qxdb("migrate", "up")
    assert "ok: no findings (0 revisions, pending)" in qxdb("migrate", "lint")
    qxdb("migrate", "revision", "-m", "index placed_at")
    path = next((tmp_path / "migrations" / "versions").glob("*_index_placed_at.py"))
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n    pass",
            'def upgrade() -> None:\n    op.create_index("ix_orders_placed_at", "orders", ["placed_at"])',
        )
    )
    proc = ok(run(tmp_path, "migrate", "lint", "--json", url=postgres_url), 1)
    assert "database: postgresql" in proc.stderr
    document = json.loads(proc.stdout)
    assert [r["message"] for r in document["revisions"]] == ["index placed_at"]
    # qxdb's env.py gives the migration connection a lock_timeout: no QXM022.
    assert document["lock_timeout_source"] == "env.py: qxdb run_async_migrations"
    assert [f["rule_id"] for f in document["findings"]] == ["QXM001"]
    assert (
        document["findings"][0]["line"]
        == path.read_text()
        .splitlines()
        .index('    op.create_index("ix_orders_placed_at", "orders", ["placed_at"])')
        + 1
    )


def test_the_demo_migrations_are_clean(tmp_path: Path) -> None:
    demo = run_qxdb("demo", "--dir", str(tmp_path / "shop"), "--orders", "1", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-2000:]
    out = ok(
        run(tmp_path / "shop", "migrate", "lint", "--all", url=None),
    ).stdout
    assert out.startswith("ok: no findings (1 revision, all)"), out
