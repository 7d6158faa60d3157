"""The pieces under the rules: raw SQL, suppression comments, configuration, SARIF."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from qxdb.errors import ConfigurationError
from qxdb.migrations.lint import (
    LintConfig,
    lint_files,
    load_lint_config,
    parse_lint_config,
    sql as sql_module,
)
from qxdb.migrations.lint.sql import has_where, read_sql, split_statements
from qxdb.migrations.lint.suppress import read_suppressions
from tests.lint.corpus import corpus_report

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


def test_statements_split_outside_quotes_comments_and_dollar_quotes() -> None:
    text = """
        -- a comment; with a semicolon
        UPDATE t SET a = 'x;y' WHERE id = 1;  /* block; comment */
        CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;
        SELECT "odd;name" FROM t
    """
    assert split_statements(text) == [
        "UPDATE t SET a = 'x;y' WHERE id = 1",
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
        'SELECT "odd;name" FROM t',
    ]


@pytest.mark.parametrize(
    ("statement", "bounded"),
    [
        ("UPDATE t SET a = 1", False),
        ("UPDATE t SET a = (SELECT max(x) FROM u WHERE u.id = 1)", False),
        ("DELETE FROM t WHERE id < 100", True),
        ("UPDATE t SET a = 1 FROM u WHERE u.id = t.id", True),
    ],
)
@pytest.mark.parametrize("parser", ["sqlglot", "scanner"])
def test_where_is_the_statements_own(
    statement: str, bounded: bool, parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if parser == "scanner":  # as without the optional sqlglot (the lint extra)
        monkeypatch.setattr(sql_module, "_sqlglot", lambda: None)
    assert has_where(statement) is bounded


@pytest.mark.parametrize(
    ("sql", "kind", "details"),
    [
        ("ALTER TABLE public.orders ADD COLUMN n int NOT NULL", "add_column", {"table": "orders"}),
        ('ALTER TABLE "Orders" ALTER COLUMN a SET NOT NULL', "set_not_null", {"table": "orders"}),
        ("ALTER TABLE t ALTER COLUMN a TYPE bigint USING a::bigint", "change_type", {}),
        (
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
            "add_constraint",
            {"not_valid": True},
        ),
        (
            "ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX c",
            "add_constraint",
            {"using_index": True},
        ),
        ("ALTER TABLE t VALIDATE CONSTRAINT c", "validate_constraint", {"name": "c"}),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON t (a)",
            "create_index",
            {"concurrently": True},
        ),
        ("DROP INDEX ix", "drop_index", {"concurrently": False}),
        ("ALTER TYPE mood ADD VALUE 'meh'", "enum_add_value", {}),
        ("SET LOCAL lock_timeout = '2s'", "set_lock_timeout", {}),
        ("SELECT set_config('lock_timeout', '2s', false)", "set_lock_timeout", {}),
        ("INSERT INTO t (a) SELECT a FROM u", "data_change", {"statement": "INSERT"}),
        ("INSERT INTO t (a) VALUES (1)", "insert_rows", {}),
        ("ALTER TABLE t RENAME TO u", "rename_table", {"name": "u"}),
        ("ALTER TABLE t RENAME COLUMN a TO b", "rename_column", {"column_name": "a"}),
        ("CREATE EXTENSION IF NOT EXISTS pgcrypto", "other", {}),
        ("CREATE TABLE archive AS SELECT * FROM orders", "create_table", {"table": "archive"}),
    ],
)
def test_raw_sql_is_read_into_actions(sql: str, kind: str, details: dict[str, object]) -> None:
    (action,) = read_sql(sql, 7)
    assert action.kind == kind
    assert action.line == 7
    for key, value in details.items():
        assert getattr(action, key) == value, (key, action)


def test_create_table_columns_from_sql() -> None:
    (action,) = read_sql(
        "CREATE TABLE t (id serial PRIMARY KEY, at timestamp, c char(2), v varchar(9) NOT NULL)", 1
    )
    types = {c.name: (c.type_text, c.primary_key, c.nullable) for c in action.columns}
    assert types == {
        "id": ("SERIAL", True, False),
        "at": ("TIMESTAMP WITHOUT TIME ZONE", False, True),
        "c": ("CHAR(2)", False, True),
        "v": ("VARCHAR(9)", False, False),
    }


def test_suppression_comments() -> None:
    source = "\n".join(
        [
            "# qxdb: lint-ignore-file[QXM013] whole file",  # 1
            "x = 1  # qxdb: lint-ignore[QXM001, drop-column] trailing",  # 2
            "# qxdb: lint-ignore[QXM007] own line",  # 3
            "",  # 4
            "y = 2",  # 5
            "# qxdb: lint-ignore[QXM999] unknown rule",  # 6
            "# qxdb: lint-ignore[QXM001]",  # 7: no reason
            "# qxdb: lint-ignore QXM001 no brackets",  # 8
        ]
    )
    found = read_suppressions(source)
    assert found.reason("QXM013", 40) == "whole file"
    assert found.reason("QXM001", 2) == "trailing"
    assert found.reason("QXM012", 2) == "trailing"
    assert found.reason("QXM007", 5) == "own line"
    assert found.reason("QXM007", 3) is None
    assert [(line, why) for line, _comment, why in found.problems] == [
        (6, "unknown rule 'QXM999'"),
        (7, "no reason given: say why it is safe here"),
        (8, "malformed: write lint-ignore[QXM0NN] reason"),
    ]


def test_config_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.qxdb.lint]\nfail-on = "error"\n'
        '[tool.qxdb.lint.rules]\nQXM022 = "off"\nvarchar-length = "error"\nQXM012 = "error"\n'
    )
    config = load_lint_config(pyproject)
    assert config.fail_on == "error"
    assert LintConfig().fail_on == "warning"  # by default any finding fails
    assert "QXM022" not in config.active_rules()
    assert "QXM019" in config.active_rules()
    flagged = config.with_flags(only=["QXM012"])
    assert flagged.active_rules() == ["QXM012"]
    assert (
        "QXM001" not in config.with_flags(ignore=["create-index-not-concurrently"]).active_rules()
    )
    with pytest.raises(ConfigurationError):
        load_lint_config(tmp_path / "absent.toml")  # named explicitly: must exist


@pytest.mark.parametrize(
    "section",
    [
        {"rules": {"QXM999": "off"}},
        {"rules": {"QXM001": "loud"}},
        {"rules": "QXM001"},
        {"rule": {"QXM001": "off"}},
        {"fail-on": "off"},
        {"fail-on": "loud"},
    ],
)
def test_bad_config_is_a_configuration_error(section: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        parse_lint_config(section, origin="pyproject.toml")


def test_flags_name_unknown_rules() -> None:
    with pytest.raises(ConfigurationError):
        LintConfig().with_flags(only=["QXM999"])


def test_sarif_output_is_valid_sarif_2_1_0() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    report = corpus_report()
    document = report.to_sarif(base=Path.cwd())
    jsonschema.validate(document, schema)
    results = document["runs"][0]["results"]
    assert len(results) == len(report.findings) + len(report.ignored)
    suppressed = [r for r in results if r.get("suppressions")]
    assert len(suppressed) == len(report.ignored)
    first = results[0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"]["uri"].startswith("tests/lint_corpus/versions/")
    assert first["region"]["startLine"] >= 1
    # A broken document is refused: the check above can fail.
    del document["runs"][0]["tool"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_a_revision_that_does_not_import_is_bad_input(tmp_path: Path) -> None:
    from qxdb.errors import ValidationError

    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    with pytest.raises(ValidationError):
        lint_files([broken])
    with pytest.raises(ValidationError):
        lint_files([tmp_path / "missing.py"])
