"""The reference's known defects (shared/reference/KNOWN-DEFECTS.md) that no other test pins.

Each test names its defect. The others are proven where the feature lives; the table in
docs/known-defects.md says where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, insert, inspect, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateSchema

from qxdb import (
    DatabaseSettings,
    DefaultOutboxRecorder,
    IntegrationEvent,
    create_engine,
    include_outbox_table,
    make_metadata,
    make_session_factory,
    uuid7,
    uuid_column,
)
from qxdb.doctor import diagnose
from qxdb.engine import _postgres_connect_args


class Noted(IntegrationEvent):
    event_name = "known.noted"
    n: int


async def test_statement_and_lock_timeouts_are_applied(db_url: str) -> None:
    """Defect 1: statement_timeout_ms (and lock_timeout_ms) reach every connection.

    PostgreSQL shows them as session settings; SQLite has no such setting and connects
    with them configured (the documented fallback). A driver other than asyncpg gets them
    through libpq's ``options``.
    """
    settings = DatabaseSettings(statement_timeout_ms=1500, lock_timeout_ms=700)
    engine = create_engine(settings, url=db_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                shown = [
                    (await conn.execute(select(func.current_setting(name)))).scalar_one()
                    for name in ("statement_timeout", "lock_timeout")
                ]
                assert shown == ["1500ms", "700ms"]
            else:
                assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    libpq = _postgres_connect_args(settings, "postgresql+psycopg://app@db/app")
    assert libpq["options"] == "-c statement_timeout=1500 -c lock_timeout=700"


async def test_no_url_means_a_working_embedded_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defect 2: with no QX_DB__URL a fresh machine needs no server (SQLite only, by nature)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QX_DB__URL", raising=False)
    engine = create_engine()
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert (tmp_path / "qxdb.sqlite3").exists()


async def test_uuid_primary_key_defaults_to_time_ordered_uuid7(engine: AsyncEngine) -> None:
    """Defect 3: uuid_column(primary_key=True) fills a UUID v7 when the row names no id."""
    table = Table(
        "notes", make_metadata(), uuid_column("id", primary_key=True), Column("label", String(9))
    )
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(insert(table), [{"label": str(i)} for i in range(5)])
        rows = (await conn.execute(select(table.c.id, table.c.label))).all()
    ids = [row.id for row in sorted(rows, key=lambda r: r.label)]
    assert all(isinstance(i, UUID) and i.version == 7 for i in ids)
    assert ids == sorted(ids)  # made in insertion order


async def test_outbox_rows_uuid7_server_defaults_and_partial_pending_index(
    engine: AsyncEngine,
) -> None:
    """Defect 15: the recorder writes through a Table (no pasted name), rows get UUID v7
    ids in commit order, the table has server defaults and a partial pending index."""
    metadata = MetaData()
    outbox = include_outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with make_session_factory(engine)() as session:
        await DefaultOutboxRecorder(outbox).record(session, [Noted(n=i) for i in range(3)])
        await session.commit()
    async with engine.begin() as conn:
        rows = (await conn.execute(select(outbox))).mappings().all()
        # Another writer (plain SQL) gets the defaults from the server.
        await conn.execute(
            insert(outbox).values(
                id=UUID(int=1), event_name="raw", payload={}, occurred_at=rows[0]["occurred_at"]
            )
        )
        raw = (await conn.execute(select(outbox).where(outbox.c.event_name == "raw"))).one()
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(outbox.name))
    recorded = sorted(rows, key=lambda r: r["payload"]["payload"]["n"])
    ids = [r["id"] for r in recorded]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert (raw.event_version, raw.attempts) == (1, 0)
    assert raw.recorded_at is not None and raw.recorded_at.tzinfo is not None
    pending = next(ix for ix in indexes if ix["name"] == f"ix_{outbox.name}_pending")
    where = pending.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
    assert where is not None and "published_at IS NULL" in str(where)


async def test_outbox_in_a_schema_is_schema_and_table(engine: AsyncEngine) -> None:
    """Defect 15, follow-up: QX_DB__OUTBOX_TABLE accepts ``schema.name``; the recorder must
    write to table ``name`` in ``schema``, not to a table called "schema.name"."""
    recorder = DefaultOutboxRecorder("sales.qx_outbox_events")
    assert (recorder.table.schema, recorder.table.name) == ("sales", "qx_outbox_events")
    if engine.dialect.name != "postgresql":
        compiled = str(recorder.table.insert().compile(dialect=sqlite.dialect()))
        assert compiled.startswith("INSERT INTO sales.qx_outbox_events ")
        return
    async with engine.begin() as conn:
        await conn.execute(CreateSchema("sales"))
        await conn.run_sync(recorder.table.metadata.create_all)
    async with make_session_factory(engine)() as session:
        await recorder.record(session, [Noted(n=1)])
        await session.commit()
    async with engine.connect() as conn:
        found: Any = await conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename = :t"),
            {"s": "sales", "t": "qx_outbox_events"},
        )
        assert found.scalar_one() == 1
        count = await conn.execute(select(recorder.table.c.id))
        assert len(count.all()) == 1
    settings = DatabaseSettings(outbox_table="sales.qx_outbox_events", statement_timeout_ms=None)
    report = await diagnose(settings.with_url(engine.url.render_as_string(hide_password=False)))
    assert report.outbox_table_exists


_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "k1"
down_revision = None


def upgrade() -> None:
    op.create_table("known", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("known")
"""


async def test_migrations_take_the_url_from_qx_db_url(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 19: no URL in alembic.ini; ``upgrade()`` migrates the QX_DB__URL database.

    (The migration lock that keeps two deploys apart: test_migrations_lock.py and
    tests/cli/test_migrate_lock.py.)
    """
    from qxdb.migrations import init_project, upgrade

    package = f"known_{uuid7().hex[:8]}"  # unique: the module stays in sys.modules
    (tmp_path / f"{package}.py").write_text(
        "from qxdb.mapping import make_metadata\nmetadata = make_metadata()\n"
    )
    project = init_project(metadata=f"{package}:metadata", project_root=tmp_path)
    (project.directory / "versions" / "k1_known.py").write_text(_REVISION)
    assert "sqlalchemy.url" not in project.config.read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QX_DB__URL", db_url)
    run = await upgrade(config=project.config, lock_timeout=5)
    assert run.after == ["k1"]
    engine = create_engine(url=db_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert "known" in names
