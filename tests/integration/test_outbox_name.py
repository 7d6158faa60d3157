"""One outbox table name everywhere: set QX_DB__OUTBOX_TABLE and every entry point follows.

The defect: ``include_outbox_table(metadata)`` and ``DefaultOutboxRecorder()`` always used
``qx_outbox_events`` while the store, the relay and ``qxdb outbox`` followed the
variable, so events were written where nothing read them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    ConfigurationError,
    DatabaseSettings,
    DefaultOutboxRecorder,
    NatsJetStreamPublisher,
    OutboxRelay,
    OutboxSelection,
    OutboxStore,
    UnitOfWork,
    create_engine,
    include_outbox_table,
    make_session_factory,
    open_outbox_store,
    request_scope,
    uuid7,
)
from qxdb.outbox.relay import relay_to_nats
from qxdb.outbox.table import outbox_table
from tests.cli.conftest import run_qxdb
from tests.integration.repo_models import User, UserRepository, metadata as app_metadata

NAME = "svc_events"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("QX_DB__OUTBOX_TABLE", NAME)
    monkeypatch.setenv("QX_DB__URL", db_url)
    return db_url


async def _rows(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as conn:
        table = outbox_table(name)
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_every_entry_point_follows_the_configured_name(
    configured: str, qxdb_nats_url: str
) -> None:
    md = MetaData()
    table = include_outbox_table(md)
    assert table.name == NAME
    assert DefaultOutboxRecorder().table.name == NAME
    assert outbox_table().name == NAME
    engine = create_engine()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
            await conn.run_sync(
                lambda c: app_metadata.create_all(c, tables=[app_metadata.tables["users"]])
            )
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert NAME in names and "qx_outbox_events" not in names

        # The recorder the unit of work writes through.
        uow = UnitOfWork(
            make_session_factory(engine),
            outbox=DefaultOutboxRecorder(),
            repositories={"users": UserRepository},
        )
        with request_scope(tenant_id=uuid7()):
            async with uow.begin() as tx:
                await tx.users.add(User.register("a@x.org", "Ann"))
        assert await _rows(engine, NAME) == 1

        # The store, built with no table and from the settings.
        assert OutboxStore(engine).table_name == NAME
        assert await OutboxStore(engine).count(OutboxSelection(status="pending")) == 1
        async with open_outbox_store() as store:
            assert store.table_name == NAME
            assert (await store.stats()).pending == 1

        # The command.
        stats = run_qxdb(
            "outbox", "stats", "--json", env={"QX_DB__OUTBOX_TABLE": NAME}, url=configured
        )
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["pending"] == 1

        # The relay, as the command runs it: it delivers the row from this table.
        tag = uuid.uuid4().hex[:12]
        prefix, stream = f"t{tag}", f"T_{tag.upper()}"
        try:
            counters = await relay_to_nats(
                DatabaseSettings(),
                nats_url=qxdb_nats_url,
                subject_prefix=prefix,
                stream=stream,
                once=True,
                handle_signals=False,
            )
            assert counters.published == 1
        finally:
            async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
                await pub.connection.jetstream().delete_stream(stream)
        async with open_outbox_store() as store:
            assert (await store.stats()).pending == 0
    finally:
        await engine.dispose()


async def test_the_relay_constructed_without_a_table_follows_the_name(
    configured: str, qxdb_nats_url: str
) -> None:
    engine = create_engine()
    try:
        relay = OutboxRelay(
            make_session_factory(engine), NatsJetStreamPublisher(qxdb_nats_url), subject_prefix="x"
        )
        assert relay.table.name == NAME
    finally:
        await engine.dispose()


async def test_the_longest_accepted_name_creates_every_derived_name(engine: AsyncEngine) -> None:
    longest = "o" * 47
    md = MetaData()
    table = include_outbox_table(md, longest)
    async with engine.begin() as conn:
        await conn.run_sync(md.create_all)
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(longest))
    # PostgreSQL truncates a longer name silently; every name arrived whole.
    assert {i["name"] for i in indexes} == {i.name for i in table.indexes}
    assert max(len(str(i.name)) for i in table.indexes) == 63
    for bad in ("o" * 48, "qx_outbox_events\n", "events; drop", "a.b.c"):
        with pytest.raises(ConfigurationError, match="not a plain SQL identifier"):
            include_outbox_table(MetaData(), bad)
        with pytest.raises(ConfigurationError):
            DefaultOutboxRecorder(bad)
        with pytest.raises(ConfigurationError):
            OutboxStore(engine, bad)
