"""Configuration, ignores and the finer points of the rules, on models (no database)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Column, Date, ForeignKey, Index, Integer, MetaData, String, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from qxdb.conventions import (
    RULES,
    CheckReport,
    SchemaConfig,
    Severity,
    check_metadata,
    load_config,
    parse_config,
)
from qxdb.conventions.naming import expected_name
from qxdb.errors import ConfigurationError
from qxdb.mapping import NAMING_CONVENTION, make_metadata, standard_audit_columns, uuid_column
from qxdb.outbox.table import include_outbox_table
from qxdb.pg_partitions import partition_key_columns
from qxdb.types import UUIDType


def entity(name: str, md: MetaData, *extra: object, **kw: object) -> Table:
    return Table(
        name, md, uuid_column("id", primary_key=True), *extra, *standard_audit_columns(), **kw
    )


def legacy(md: MetaData, name: str = "legacy_orders", **kw: object) -> Table:
    """Breaks QX001 and QX013 (integer serial key) and nothing else."""
    return Table(name, md, Column("id", Integer, primary_key=True), *standard_audit_columns(), **kw)


def rule_ids(report: CheckReport, table: str) -> set[str]:
    return {f.rule_id for f in report.findings if f.table == table}


def test_rules_have_stable_ids_names_and_one_line_texts() -> None:
    assert list(RULES) == [f"QX{n:03d}" for n in range(1, 27)]
    for rule in RULES.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
        assert rule.rationale
        assert rule.hint
        assert "\n" not in rule.rationale + rule.hint
    live_postgresql = {"QX016", "QX017", "QX018", "QX020", "QX021", "QX022", "QX023", "QX026"}
    assert {r.id for r in RULES.values() if "sqlite" not in r.sources} == {
        "QX005",
        "QX006",
        "QX024",
        *live_postgresql,
    }
    assert {r.id for r in RULES.values() if r.sources == {"postgresql"}} == live_postgresql
    # Every rule documents itself for --explain: what, why, and a "Fix:" paragraph.
    assert all("\nFix: " in rule.doc or "\n\nFix" in rule.doc for rule in RULES.values())


def test_pyproject_configuration(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        """
[tool.qxdb.schema]
metadata = "svc.db:metadata"
skip-tables = ["tmp_*"]

[tool.qxdb.schema.rules]
QX001 = "warning"
no-serial-key = "off"

[tool.qxdb.schema.ignore.audited]
audit-columns = "audit lives in the event store"
""",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "pyproject.toml")
    assert config.metadata == "svc.db:metadata"
    md = make_metadata()
    legacy(md)
    legacy(md, "tmp_import")
    Table("audited", md, uuid_column("id", primary_key=True))
    report = check_metadata(md, config)
    assert report.ok  # QX001 is only a warning now, QX013 is off
    assert [(f.table, f.rule_id, f.severity) for f in report.findings] == [
        ("legacy_orders", "QX001", Severity.WARNING)
    ]
    assert "tmp_import" not in report.tables
    assert {(f.table, f.rule_id, f.ignored_reason) for f in report.ignored} == {
        ("audited", "QX002", "audit lives in the event store")
    }


def test_no_pyproject_means_defaults_and_alembic_version_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    md = make_metadata()
    Table("alembic_version", md, Column("version_num", String(32), primary_key=True))
    report = check_metadata(md, config)
    assert report.tables == []
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"skip_tabels": []}, "unknown key 'skip-tabels'"),
        ({"rules": {"QX999": "off"}}, "unknown rule 'QX999'"),
        ({"rules": {"QX001": "loud"}}, 'must be "off", "info", "warning" or "error"'),
        ({"ignore": {"orders": {"QX001": ""}}}, "give the reason"),
        ({"skip-tables": "alembic_version"}, "must be a list of strings"),
    ],
)
def test_bad_configuration_is_one_clear_error(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_config(section)


def test_table_info_ignores_need_known_rules() -> None:
    md = make_metadata()
    legacy(md, info={"qxdb_schema_ignore": {"QX001": "kept until 2027", "no-serial-key": "same"}})
    report = check_metadata(md)
    assert report.findings == []
    assert {(f.rule_id, f.ignored_reason) for f in report.ignored} == {
        ("QX001", "kept until 2027"),
        ("QX013", "same"),
    }
    md2 = make_metadata()
    legacy(md2, info={"qxdb_schema_ignore": {"QX404": "typo"}})
    with pytest.raises(ConfigurationError, match="unknown rule 'QX404'"):
        check_metadata(md2)


def test_command_flags_select_and_turn_off_rules() -> None:
    md = make_metadata()
    legacy(md)
    only = check_metadata(md, SchemaConfig().with_flags(only=["qx013"]))
    assert only.rules == ["QX013"]
    assert rule_ids(only, "legacy_orders") == {"QX013"}
    off = check_metadata(md, SchemaConfig().with_flags(ignore=["QX001", "no-serial-key"]))
    assert off.findings == []
    config_off = parse_config({"rules": {"QX013": "off"}})
    assert check_metadata(md, config_off.with_flags(only=["QX013"])).rules == ["QX013"]
    with pytest.raises(ConfigurationError, match="unknown rule 'nope' in --rule"):
        SchemaConfig().with_flags(only=["nope"])


def test_metadata_without_naming_convention_leaves_constraints_unnamed() -> None:
    md = MetaData()
    entity("parents", md)
    entity("children", md, Column("parent_id", UUIDType(), ForeignKey("parents.id", ondelete="CASCADE"), index=True))  # fmt: skip
    messages = [f.message for f in check_metadata(md).findings if f.table == "children"]
    assert messages == [
        "primary key has no name; expected pk_children",
        "foreign key has no name; expected fk_children_parent_id_parents",
    ]


def test_shortened_convention_names_match_what_sqlalchemy_emits() -> None:
    md = make_metadata()
    long_table = "a" * 40 + "_events"
    table = entity(long_table, md, Column("correlation_reference_id", UUIDType(), index=True))
    index = next(i for i in table.indexes if i.columns.keys() == ["correlation_reference_id"])
    emitted = str(CreateIndex(index).compile(dialect=postgresql.dialect())).split()[2]  # type: ignore[no-untyped-call]
    assert len(emitted) <= 63
    pattern = expected_name(
        NAMING_CONVENTION["ix"], table=long_table, columns=["correlation_reference_id"]
    )
    assert pattern.exact is not None
    assert pattern.exact != emitted
    assert pattern.matches(emitted)
    assert check_metadata(md).findings == []


def test_redundant_index_respects_predicates_and_uniqueness() -> None:
    md = make_metadata()
    pending = text("code IS NULL")
    entity(
        "keyed",
        md,
        Column("code", String(20)),
        Column("kind", String(20)),
        Column("ref", String(20), unique=True),
        Index("ix_keyed_pending", "id", postgresql_where=pending),  # partial: not the pk
        Index("ix_keyed_code", "code", unique=True),  # unique: adds a guarantee
        Index("ix_keyed_code_kind", "code", "kind"),
        Index("ix_keyed_kind", "kind"),
        Index("ix_keyed_kind_again", "kind"),  # exact duplicate
        Index("ix_keyed_ref", "ref"),  # covered by the unique constraint
    )
    findings = [f for f in check_metadata(md).findings if f.rule_id == "QX014"]
    assert sorted(f.subject or "" for f in findings) == ["ix_keyed_kind_again", "ix_keyed_ref"]
    assert all(f.severity is Severity.WARNING for f in findings)


def test_report_is_one_json_document() -> None:
    md = make_metadata()
    legacy(md)
    document = json.loads(json.dumps(check_metadata(md).to_dict()))
    assert document["ok"] is False
    assert document["counts"] == {"error": 2, "warning": 0, "info": 0, "ignored": 0}
    assert {f["rule_id"] for f in document["findings"]} == {"QX001", "QX013"}


def test_each_part_of_the_column_rules_speaks_plainly() -> None:
    md = make_metadata()
    audit = [c for c in standard_audit_columns(include_deletion=False) if c.name != "created_at"]
    Table(
        "user",
        md,
        uuid_column("id", primary_key=True),
        Column("created_at", String(30)),
        Column("x" * 64, String(10)),
        Column("offset", Integer),
        Column("deleted_by", UUIDType()),
        *audit,
    )
    messages = {(f.rule_id, f.message) for f in check_metadata(md).findings}
    assert messages == {
        ("QX002", "created_at is VARCHAR(30), not a timestamp"),
        ("QX002", "created_at is nullable; it must be NOT NULL"),
        ("QX003", "deleted_by without deleted_at"),
        ("QX011", "table name 'user' is a reserved word in SQL and must be quoted everywhere"),
        ("QX011", f"column '{'x' * 64}' is 64 bytes long (PostgreSQL truncates at 63)"),
        ("QX011", "column 'offset' is a reserved word in SQL and must be quoted everywhere"),
    }


@pytest.mark.parametrize(
    ("definition", "columns"),
    [
        ("RANGE (recorded_at)", ("recorded_at",)),
        ('LIST ("Region", tenant_id)', ("Region", "tenant_id")),
        ("HASH (id)", ("id",)),
        (None, ()),
        ("", ()),
    ],
)
def test_partition_key_columns(definition: str | None, columns: tuple[str, ...]) -> None:
    assert partition_key_columns(definition) == columns


def test_a_partitioned_table_may_add_its_partition_key_to_the_primary_key() -> None:
    md = make_metadata()
    include_outbox_table(md, partitioned=True)
    Table(
        "readings",
        md,
        uuid_column("id", primary_key=True),
        Column("taken_on", Date, primary_key=True),
        *standard_audit_columns(),
        postgresql_partition_by="RANGE (taken_on)",
    )
    Table(
        "wrong",
        md,
        uuid_column("id", primary_key=True),
        Column("taken_on", Date, primary_key=True),
        Column("other", Date),
        *standard_audit_columns(),
        postgresql_partition_by="RANGE (other)",
    )
    found = {(f.table, f.rule_id) for f in check_metadata(md).findings}
    assert ("readings", "QX001") not in found
    assert ("qx_outbox_events", "QX001") not in found
    assert ("qx_outbox_events", "QX015") not in found
    assert ("wrong", "QX001") in found  # its key does not hold its partition key only


def test_an_outbox_partitioned_by_another_column_is_not_the_outbox_shape() -> None:
    md = make_metadata()
    table = include_outbox_table(md, partitioned=True)
    table.dialect_options["postgresql"]["partition_by"] = "RANGE (occurred_at)"
    messages = [f.message for f in check_metadata(md).findings if f.rule_id == "QX015"]
    assert any("partitioned by (occurred_at)" in m for m in messages), messages
