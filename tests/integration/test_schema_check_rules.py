"""Every convention rule, broken and kept, on a model and on live SQLite and PostgreSQL.

Each case declares two tables: one that breaks the rule and one built with qxdb's helpers
that keeps it. All cases share one metadata; it is checked as a model, and created with
``create_all`` in one SQLite file and one PostgreSQL database, which are then checked by
reflection. A good table must have no finding at all; a bad one must have the rule's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    CHAR,
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.engine import make_url

from qxdb.conventions import CheckReport, SchemaConfig, check_database, check_metadata
from qxdb.mapping import (
    jsonb_column,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid_column,
)
from qxdb.outbox.table import include_outbox_table, outbox_table
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from qxdb.testing.servers import Server
from qxdb.types import UTCDateTime, UUIDType

Build = Callable[[str, MetaData], Table]


def entity(name: str, md: MetaData, *extra: Any, audit: list[Column[Any]] | None = None) -> Table:
    """A table as qxdb's helpers build it, plus ``extra`` columns and constraints."""
    return Table(
        name,
        md,
        uuid_column("id", primary_key=True),
        *extra,
        *(audit if audit is not None else standard_audit_columns()),
    )


def parent_fk(column: str, target: str = "parents.id", **kw: Any) -> Column[Any]:
    type_ = kw.pop("type_", UUIDType())
    return Column(column, type_, ForeignKey(target, **kw.pop("fk", {})), **kw)


def outbox_without(name: str, md: MetaData, drop: str) -> Table:
    reference = outbox_table(name)
    columns = [
        Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key)
        for c in reference.columns
        if c.name != drop
    ]
    return Table(name, md, *columns, info={"qxdb_outbox": True})


@dataclass(frozen=True)
class Case:
    rule: str
    bad: Build
    good: Build
    # Live SQLite cannot judge the rule (types reflect loosely): the bad table passes there.
    sqlite: bool = True


CASES = [
    Case("QX001", lambda n, md: Table(n, md, uuid_column("key", primary_key=True),
                                      *standard_audit_columns()), entity),
    Case("QX002", lambda n, md: entity(n, md, audit=[c for c in standard_audit_columns()
                                                     if c.name != "version"]), entity),
    Case("QX003", lambda n, md: entity(
        n, md, Column("deleted_at", UTCDateTime()), Column("deleted_by", UUIDType()),
        audit=standard_audit_columns(include_deletion=False)), entity),
    Case("QX004", lambda n, md: entity(
        n, md, Column("tenant_id", UUIDType()),
        audit=standard_audit_columns(include_tenant=False)), entity),
    Case("QX005", lambda n, md: entity(n, md, Column("happened_at", DateTime())),
         lambda n, md: entity(n, md, timestamp_column("happened_at")), sqlite=False),
    Case("QX006", lambda n, md: entity(n, md, Column("data", JSON())),
         lambda n, md: entity(n, md, jsonb_column("data")), sqlite=False),
    Case("QX007", lambda n, md: entity(n, md, parent_fk("parent_id", fk={"ondelete": "CASCADE"})),
         lambda n, md: entity(n, md, parent_fk("parent_id", fk={"ondelete": "CASCADE"},
                                               index=True))),
    Case("QX008", lambda n, md: entity(n, md, parent_fk(
        "parent_code", "parents.code", type_=String(50), fk={"ondelete": "CASCADE"}, index=True)),
         lambda n, md: entity(n, md, parent_fk(
        "parent_code", "parents.code", type_=String(100), fk={"ondelete": "CASCADE"},
        index=True))),
    Case("QX009", lambda n, md: entity(n, md, parent_fk("parent_id", index=True)),
         lambda n, md: entity(n, md, parent_fk("parent_id", fk={"ondelete": "RESTRICT"},
                                               index=True))),
    Case("QX010", lambda n, md: entity(n, md, Column("code", String(20)),
                                       Index(f"{n}_code_idx", "code")),
         # An explicit name after ix_<table>_ is accepted, as for the outbox's pending index.
         lambda n, md: entity(n, md, Column("code", String(20)),
                              Index(f"ix_{n}_by_code", "code"))),
    Case("QX011", lambda n, md: entity(n, md, Column("Order", String(20))),
         lambda n, md: entity(n, md, Column("sort_order", String(20)))),
    Case("QX012", lambda n, md: entity(n, md, Column("code", CHAR(3))),
         lambda n, md: entity(n, md, Column("code", String(3)))),
    Case("QX013", lambda n, md: Table(n, md, Column("id", Integer, primary_key=True),
                                      *standard_audit_columns()), entity),
    Case("QX014", lambda n, md: entity(n, md, Column("code", String(20)), Column("kind", String(20)),
                                       Index(f"ix_{n}_code", "code"),
                                       Index(f"ix_{n}_code_kind", "code", "kind")),
         lambda n, md: entity(n, md, Column("code", String(20)), Column("kind", String(20)),
                              Index(f"ix_{n}_kind", "kind"),
                              Index(f"ix_{n}_code_kind", "code", "kind"))),
    Case("QX015", lambda n, md: outbox_without(n, md, "delivery_id"),
         lambda n, md: include_outbox_table(md, n)),
]  # fmt: skip


def names(case: Case) -> tuple[str, str]:
    return f"{case.rule.lower()}_bad", f"{case.rule.lower()}_good"


def build_metadata() -> MetaData:
    md = make_metadata()
    entity("parents", md, Column("code", String(100), nullable=False, unique=True))
    for case in CASES:
        bad, good = names(case)
        case.bad(bad, md)
        case.good(good, md)
    return md


# The outbox cases are found by name on a live database, as settings.outbox_table is.
CONFIG = SchemaConfig(outbox_tables=names(CASES[-1]))


async def _create_and_check(url: str) -> CheckReport:
    from qxdb.engine import create_engine

    settings = DatabaseSettings(statement_timeout_ms=None, url=url)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(build_metadata().create_all)
    finally:
        await engine.dispose()
    return await check_database(settings, CONFIG)


@pytest.fixture(scope="module")
def metadata_report() -> CheckReport:
    return check_metadata(build_metadata(), CONFIG)


@pytest.fixture(scope="module")
def sqlite_report(tmp_path_factory: pytest.TempPathFactory) -> CheckReport:
    path: Path = tmp_path_factory.mktemp("schema") / "rules.sqlite3"
    return run_coro(_create_and_check(f"sqlite+aiosqlite:///{path}"))


async def _admin(server_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server_url.replace("+asyncpg", ""))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def postgresql_report(qxdb_postgres_server: Server) -> Iterator[CheckReport]:
    # One database for the module (the plugin's postgres_url is per test).
    name = f"qxdb_t_{uuid.uuid4().hex[:16]}"
    server = make_url(qxdb_postgres_server.url)
    run_coro(_admin(qxdb_postgres_server.url, f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(drivername="postgresql+asyncpg", database=name)
        yield run_coro(_create_and_check(url.render_as_string(hide_password=False)))
    finally:
        run_coro(_admin(qxdb_postgres_server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def findings(report: CheckReport, table: str) -> list[str]:
    assert table in report.tables
    return [f"{f.rule_id}: {f.message}" for f in report.findings if f.table == table]


@pytest.mark.parametrize("source", ["metadata", "postgresql", "sqlite"])
@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_rule_breaks_and_keeps(case: Case, source: str, request: pytest.FixtureRequest) -> None:
    report: CheckReport = request.getfixturevalue(f"{source}_report")
    bad, good = names(case)
    assert findings(report, good) == []
    bad_findings = findings(report, bad)
    if source == "sqlite" and not case.sqlite:
        assert bad_findings == [], "SQLite reflection cannot judge this rule: no false findings"
    else:
        assert any(f.startswith(f"{case.rule}:") for f in bad_findings), bad_findings


@pytest.mark.parametrize("source", ["metadata", "postgresql", "sqlite"])
def test_shared_parent_table_passes(source: str, request: pytest.FixtureRequest) -> None:
    report: CheckReport = request.getfixturevalue(f"{source}_report")
    assert findings(report, "parents") == []
