"""``qxdb schema``: plugin rules through a real entry point, the baseline round trip,
SARIF validated against the official 2.1.0 schema, and ``rules --explain``; all run as
the real ``qxdb`` command."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy.engine import make_url

from qxdb.testing.plugin import run_coro
from tests.cli.conftest import run_qxdb

PLUGIN = Path(__file__).parents[1] / "schema_plugin"
SARIF_SCHEMA = Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json"

MODELS = """
from sqlalchemy import CHAR, Column, Integer, Table
from qxdb.mapping import make_metadata, standard_audit_columns, uuid_column

def entity(name, md, *extra):
    return Table(name, md, uuid_column("id", primary_key=True), *extra, *standard_audit_columns())

v1 = make_metadata()
Table("legacy_orders", v1, Column("id", Integer, primary_key=True), *standard_audit_columns())
entity("tmp_import", v1, Column("code", CHAR(3)))
entity("orders", v1)

# v2: tmp_import dropped (a baseline entry gone), a new legacy table (a new finding).
v2 = make_metadata()
Table("legacy_orders", v2, Column("id", Integer, primary_key=True), *standard_audit_columns())
Table("legacy_lines", v2, Column("id", Integer, primary_key=True), *standard_audit_columns())
entity("orders", v2)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models.py").write_text(MODELS, encoding="utf-8")
    return tmp_path


def install_plugin(site: Path, entry_point: str | None = None) -> dict[str, str]:
    """Install the test package as a wheel would: its module and a dist-info carrying the
    entry points of its pyproject.toml. Returns the environment that puts it on the path."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN / "acme_schema_rules.py", site)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {entry_point or value}" for name, value in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"PYTHONPATH": str(site)}


# --- plugins -------------------------------------------------------------------------


def test_plugin_rule_is_listed_explained_and_runs(project: Path, tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site")
    listing = run_qxdb("schema", "rules", cwd=project, env=env)
    assert listing.returncode == 0, listing.stderr
    assert (
        "ACME001  no-tmp-tables  error  [metadata, postgresql, sqlite; from acme-schema-rules 0.1.0]"
        in listing.stdout
    )
    document = json.loads(run_qxdb("schema", "rules", "--json", cwd=project, env=env).stdout)
    assert [r["id"] for r in document][-2:] == ["ACME001", "ACME002"]
    explained = run_qxdb("schema", "rules", "--explain", "no-tmp-tables", cwd=project, env=env)
    assert explained.returncode == 0
    assert "Tables named tmp_* are scratch space" in explained.stdout

    result = run_qxdb("schema", "check", "--metadata", "models:v1", "--json", cwd=project, env=env)
    findings = json.loads(result.stdout)["findings"]
    assert {(f["rule_id"], f["table"]) for f in findings if f["rule_id"] == "ACME001"} == {
        ("ACME001", "tmp_import")
    }
    # Without the plugin installed the same check knows nothing of it.
    plain = run_qxdb("schema", "check", "--metadata", "models:v1", "--json", cwd=project)
    assert "ACME001" not in plain.stdout


def test_plugin_rule_is_configured_and_ignored_like_builtins(project: Path, tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site")
    only = ("schema", "check", "--metadata", "models:v1", "--rule", "ACME001")
    assert run_qxdb(*only, cwd=project, env=env).returncode == 1
    assert run_qxdb(*only, "--ignore", "no-tmp-tables", cwd=project, env=env).returncode == 0
    (project / "pyproject.toml").write_text(
        '[tool.qxdb.schema.rules]\nACME001 = "warning"\n', encoding="utf-8"
    )
    warned = run_qxdb(*only, cwd=project, env=env)
    assert warned.returncode == 0, warned.stdout
    assert "  warning  ACME001 no-tmp-tables: tmp_import looks like a leftover" in warned.stdout
    (project / "pyproject.toml").write_text(
        '[tool.qxdb.schema.ignore.tmp_import]\nno-tmp-tables = "dropped in the next release"\n',
        encoding="utf-8",
    )
    ignored = run_qxdb(*only, cwd=project, env=env)
    assert ignored.returncode == 0
    assert "ignored: tmp_import ACME001 no-tmp-tables" in ignored.stdout


def test_plugin_rule_uses_the_live_connection(
    project: Path, tmp_path: Path, postgres_url: str
) -> None:
    run_coro(_execute(postgres_url, ["CREATE TABLE quiet (id uuid PRIMARY KEY)",
                                     "CREATE TABLE told (id uuid PRIMARY KEY)",
                                     "COMMENT ON TABLE told IS 'documented'"]))  # fmt: skip
    env = install_plugin(tmp_path / "site")
    url = (
        make_url(postgres_url)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    result = run_qxdb(
        "--database-url", url, "schema", "check", "--database", "--rule", "ACME002", "--json",
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [(f["table"], f["message"]) for f in json.loads(result.stdout)["findings"]] == [
        ("quiet", "quiet has no COMMENT")
    ]


def test_broken_plugin_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", entry_point="acme_schema_rules:NOT_A_RULE")
    result = run_qxdb("schema", "check", "--metadata", "models:v1", cwd=project, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "qxdb: error: schema rule plugin 'acme' (acme_schema_rules:NOT_A_RULE) must name a "
        "Rule or a list of Rules (made with qxdb.conventions.define_rule)"
    )


def test_failing_plugin_rule_is_named_in_one_line(project: Path, tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", entry_point="acme_schema_rules:BUGGY")
    result = run_qxdb("schema", "check", "--metadata", "models:v1", "--rule", "ACME003",
                      cwd=project, env=env)  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "qxdb: error: schema rule ACME003 crashes (from acme-schema-rules 0.1.0) failed on "
        "table legacy_orders: ZeroDivisionError: division by zero"
    )


# --- baseline ------------------------------------------------------------------------


def test_baseline_round_trip(project: Path) -> None:
    baseline = project / "schema-baseline.json"
    first = run_qxdb(
        "schema", "check", "--metadata", "models:v1", "--write-baseline", str(baseline),
        cwd=project,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "baseline: wrote 3 findings to" in first.stderr
    recorded = json.loads(baseline.read_text(encoding="utf-8"))
    assert recorded["qxdb-schema-baseline"] == 1
    assert [(e["rule_id"], e["table"]) for e in recorded["findings"]] == [
        ("QX001", "legacy_orders"),
        ("QX013", "legacy_orders"),
        ("QX012", "tmp_import"),
    ]

    # The same schema against its baseline: nothing new, exit 0.
    same = run_qxdb("schema", "check", "--metadata", "models:v1", "--baseline", str(baseline),
                    cwd=project)  # fmt: skip
    assert same.returncode == 0, same.stdout
    assert same.stdout.splitlines()[-1].startswith("ok: no new findings (3 tables")
    assert same.stdout.splitlines()[-1].endswith("; 3 in baseline")

    # A new legacy table fails; the dropped table's entries are reported gone.
    later = run_qxdb("schema", "check", "--metadata", "models:v2", "--baseline", str(baseline),
                     "--json", cwd=project)  # fmt: skip
    assert later.returncode == 1
    document = json.loads(later.stdout)
    assert {f["table"] for f in document["findings"]} == {"legacy_lines"}
    assert {f["table"] for f in document["baseline"]["matched"]} == {"legacy_orders"}
    gone = document["baseline"]["gone"]
    assert [(e["rule_id"], e["table"], e["subject"]) for e in gone] == [
        ("QX012", "tmp_import", "code")
    ]
    # Shrinking: rewrite it (the output is still the check's, here as a table), and the
    # new state passes.
    table = run_qxdb("schema", "check", "--metadata", "models:v2", "--baseline", str(baseline),
                     "--write-baseline", str(baseline), cwd=project)  # fmt: skip
    assert table.returncode == 0
    assert table.stdout.splitlines()[0] == "legacy_lines"
    assert "legacy_orders" not in table.stdout
    assert "gone from baseline: tmp_import QX012 code: code is CHAR(3)" in table.stdout
    again = run_qxdb("schema", "check", "--metadata", "models:v2", "--baseline", str(baseline),
                     cwd=project)  # fmt: skip
    assert again.returncode == 0, again.stdout
    assert "gone from baseline" not in again.stdout


def test_missing_baseline_exit_2(project: Path) -> None:
    """Malformed files are covered as library calls (tests/unit/test_sarif_and_baseline.py)."""
    result = run_qxdb("schema", "check", "--metadata", "models:v1", "--baseline",
                      "schema-baseline.json", cwd=project)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "qxdb: error: baseline file schema-baseline.json not found "
        "(create it with --write-baseline schema-baseline.json)"
    )


# --- SARIF ---------------------------------------------------------------------------


async def _execute(url: str, statements: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def validate_sarif(document: object) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(document)


def test_sarif_of_a_live_database_is_valid(project: Path, postgres_url: str) -> None:
    run_coro(_execute(postgres_url, [
        "CREATE TABLE stock (id uuid PRIMARY KEY, qty integer)",
        "ALTER TABLE stock ADD CONSTRAINT ck_stock_qty CHECK (qty >= 0) NOT VALID",
        "CREATE UNLOGGED TABLE scratch (id uuid PRIMARY KEY)",
    ]))  # fmt: skip
    url = (
        make_url(postgres_url)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    baseline = project / "baseline.json"
    args = ("--database-url", url, "schema", "check", "--database", "--ignore", "QX002",
            "--ignore", "QX010")  # fmt: skip
    run_qxdb(*args, "--rule", "QX023", "--rule", "QX017", "--write-baseline", str(baseline),
             cwd=project)  # fmt: skip
    (project / "pyproject.toml").write_text(
        '[tool.qxdb.schema.ignore.scratch]\nQX023 = "a cache, rebuilt on start"\n',
        encoding="utf-8",
    )
    run_coro(_execute(postgres_url, ["ALTER TABLE stock VALIDATE CONSTRAINT ck_stock_qty",
                                     "CREATE TABLE events (at timestamp)"]))  # fmt: skip
    result = run_qxdb(*args, "--baseline", str(baseline), "--format", "sarif", cwd=project)
    assert result.returncode == 1, result.stderr  # events: new errors
    document = json.loads(result.stdout)
    validate_sarif(document)
    run = document["runs"][0]
    assert run["tool"]["driver"]["name"] == "qxdb schema check"
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["QX016"]["defaultConfiguration"] == {"level": "error"}
    assert rules["QX021"]["defaultConfiguration"] == {"level": "note"}
    assert "CONCURRENTLY" in rules["QX016"]["fullDescription"]["text"]
    by_rule: dict[str, list[dict[str, object]]] = {}
    for r in run["results"]:
        by_rule.setdefault(r["ruleId"], []).append(r)
    assert by_rule["QX019"][0]["baselineState"] == "new"  # events has no primary key
    assert by_rule["QX019"][0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        "events"
    )
    (unlogged,) = by_rule["QX023"]
    assert unlogged["suppressions"] == [
        {"kind": "external", "justification": "a cache, rebuilt on start"}
    ]
    (validated,) = by_rule["QX017"]
    assert validated["baselineState"] == "absent"
    assert validated["level"] == "none"


def test_sarif_of_models_points_at_the_module(project: Path) -> None:
    result = run_qxdb("schema", "check", "--metadata", "models:v1", "--format", "sarif",
                      cwd=project)  # fmt: skip
    assert result.returncode == 1
    document = json.loads(result.stdout)
    validate_sarif(document)
    locations = [r["locations"][0] for r in document["runs"][0]["results"]]
    assert {loc["physicalLocation"]["artifactLocation"]["uri"] for loc in locations} == {
        "models.py"
    }
    assert all("baselineState" not in r for r in document["runs"][0]["results"])


def test_sarif_validation_catches_a_broken_log() -> None:
    """The validation above can fail: a result without its message is refused."""
    with pytest.raises(jsonschema.ValidationError):
        validate_sarif({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                                      "results": [{"ruleId": "QX001"}]}]})  # fmt: skip


# --- explain -------------------------------------------------------------------------


def test_explain_prints_the_documentation(project: Path) -> None:
    result = run_qxdb("schema", "rules", "--explain", "qx018", cwd=project)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "QX018 sequence-exhaustion"
    assert lines[1] == "default severity: error; applies to: postgresql"
    assert "ALTER SEQUENCE orders_id_seq AS bigint" in result.stdout
    assert '[tool.qxdb.schema.rules]          QX018 = "off"' in result.stdout
    by_name = run_qxdb("schema", "rules", "--explain", "redundant-index", "--json", cwd=project)
    assert json.loads(by_name.stdout)["id"] == "QX014"
    unknown = run_qxdb("schema", "rules", "--explain", "QX999", cwd=project)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("qxdb: error: unknown rule 'QX999' in --explain")
