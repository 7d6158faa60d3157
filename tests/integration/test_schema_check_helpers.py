"""qxdb follows its own conventions: tables built only with its helpers pass every rule,
as models and as live databases created from them, with no configuration."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Numeric, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.conventions import RULES, check_database, check_metadata
from qxdb.mapping import (
    jsonb_column,
    make_metadata,
    standard_audit_columns,
    timestamp_column,
    uuid_column,
)
from qxdb.outbox.table import OUTBOX_TABLE_NAME, include_outbox_table
from qxdb.settings import DatabaseSettings
from qxdb.types import UUIDType

# Long enough that convention names pass 63 bytes and PostgreSQL gets shortened ones.
LONG_PARENT = "customer_notification_preferences_by_delivery_channel"
LONG_CHILD = "subscription_renewal_reminder_delivery_attempt_records"


def ref(column: str, target: str, ondelete: str = "CASCADE") -> Column[object]:
    return Column(
        column, UUIDType(), ForeignKey(target, ondelete=ondelete), nullable=False, index=True
    )


def service_metadata() -> MetaData:
    md = make_metadata()
    Table(
        "customers",
        md,
        uuid_column("id", primary_key=True),
        Column("email", String(255), nullable=False, unique=True),
        jsonb_column("preferences"),
        *standard_audit_columns(),
    )
    Table(
        "orders",
        md,
        uuid_column("id", primary_key=True),
        ref("customer_id", "customers.id", "RESTRICT"),
        timestamp_column("placed_at", nullable=False),
        Column("total", Numeric(12, 2), nullable=False),
        *standard_audit_columns(),
    )
    Table(
        "order_lines",
        md,
        uuid_column("id", primary_key=True),
        ref("order_id", "orders.id"),
        Column("sku", String(64), nullable=False),
        Column("quantity", Integer, nullable=False),
        *standard_audit_columns(include_tenant=False, include_deletion=False),
    )
    Table(
        LONG_PARENT,
        md,
        uuid_column("id", primary_key=True),
        ref("customer_id", "customers.id"),
        *standard_audit_columns(),
    )
    Table(
        LONG_CHILD,
        md,
        uuid_column("id", primary_key=True),
        ref("customer_notification_preference_id", f"{LONG_PARENT}.id"),
        *standard_audit_columns(),
    )
    include_outbox_table(md)
    return md


def test_helper_models_pass_every_rule() -> None:
    report = check_metadata(service_metadata())
    assert report.findings == []
    assert report.ignored == []
    # Every rule that can judge a model ran; the health rules need a live database.
    assert report.rules == [r.id for r in RULES.values() if "metadata" in r.sources]
    assert len(report.tables) == 6


async def test_database_created_from_helper_models_passes(engine: AsyncEngine) -> None:
    alembic = Table(
        "alembic_version", MetaData(), Column("version_num", String(32), primary_key=True)
    )
    async with engine.begin() as conn:
        await conn.run_sync(service_metadata().create_all)
        await conn.run_sync(alembic.create)
    url = engine.url.render_as_string(hide_password=False)
    report = await check_database(DatabaseSettings(url=url, statement_timeout_ms=None))
    assert report.source == engine.dialect.name
    assert [f"{f.table}: {f.rule_id} {f.message}" for f in report.findings] == []
    # Alembic's table is skipped by default; the outbox is found by its settings name.
    assert "alembic_version" not in report.tables
    assert OUTBOX_TABLE_NAME in report.tables
    assert len(report.tables) == 6
