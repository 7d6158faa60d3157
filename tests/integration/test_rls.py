"""Row-level security as a second tenancy wall, on a real PostgreSQL, as an ordinary role.

Superusers bypass RLS whatever the table says, so the tests connect as a fresh
non-superuser role (created and dropped here) that owns nothing: the policy decides.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, String, Table, UniqueConstraint, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

import qxdb.migrations.rls_ops  # noqa: F401  (registers op.enable_tenant_rls)
from qxdb import (
    AggregateRoot,
    ConfigurationError,
    Repository,
    make_metadata,
    request_scope,
    standard_audit_columns,
    system_scope,
    uuid7,
    uuid_column,
)
from qxdb.engine import create_engine, make_session_factory
from qxdb.rls import policy_statements, tenant_transaction
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from qxdb.uow import UnitOfWork

pytestmark = pytest.mark.postgres_only

metadata = make_metadata()
rls_items = Table(
    "rls_items",
    metadata,
    uuid_column("id", primary_key=True),
    Column("sku", String(40), nullable=False),
    Column("name", String(100), nullable=False),
    *standard_audit_columns(),
    UniqueConstraint("sku", name="uq_rls_items_sku"),
)

A, B = uuid7(), uuid7()


@dataclass(kw_only=True, eq=False)
class Item(AggregateRoot):
    sku: str
    name: str


class ItemRepository(Repository[Item]):
    entity_cls = Item
    table = rls_items
    filterable_fields = {"sku"}
    sortable_fields = {"sku"}


async def _admin(url: str, *statements: str) -> None:
    engine = create_engine(DatabaseSettings(pool_kind="null"), url=url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def app_url(postgres_url: str) -> Iterator[str]:
    """The test database, its table behind RLS (through the Alembic operation), seeded
    with one row of A and one of B, and a URL for an ordinary role."""
    role = f"qxdb_rls_{uuid.uuid4().hex[:12]}"

    async def setup() -> None:
        engine = create_engine(DatabaseSettings(pool_kind="null"), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)

                def migrate(sync: Connection) -> None:
                    Operations(MigrationContext.configure(sync)).enable_tenant_rls("rls_items")

                await conn.run_sync(migrate)
                for tenant, sku in ((A, "a1"), (B, "b1")):
                    await conn.execute(
                        rls_items.insert().values(
                            id=uuid7(), sku=sku, name=sku, tenant_id=tenant, version=1
                        )
                    )
        finally:
            await engine.dispose()
        await _admin(
            postgres_url,
            f"CREATE ROLE {role} LOGIN",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON rls_items TO {role}",
        )

    run_coro(setup())
    try:
        yield make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    finally:
        run_coro(_admin(postgres_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}"))


@pytest.fixture
async def app_engine(app_url: str) -> AsyncIterator[AsyncEngine]:
    # One pooled connection: every transaction below reuses the same server session.
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=app_url
    )
    try:
        yield engine
    finally:
        await engine.dispose()


async def _skus(conn_or_session: object, sql: str = "SELECT sku FROM rls_items") -> list[str]:
    rows = await conn_or_session.execute(text(sql))  # type: ignore[attr-defined]
    return sorted(r[0] for r in rows)


async def test_raw_sql_under_tenant_a_sees_and_writes_only_a(app_engine: AsyncEngine) -> None:
    uow = UnitOfWork(make_session_factory(app_engine), rls=True)
    with request_scope(tenant_id=A):
        async with uow.begin() as tx:
            assert await _skus(tx.session) == ["a1"]
            assert (
                await _skus(tx.session, f"SELECT sku FROM rls_items WHERE tenant_id = '{B}'") == []
            )
            changed = await tx.session.execute(text("UPDATE rls_items SET name = 'hacked'"))
            assert changed.rowcount == 1  # type: ignore[attr-defined]  # A's own row only
            deleted = await tx.session.execute(text("DELETE FROM rls_items WHERE sku = 'b1'"))
            assert deleted.rowcount == 0  # type: ignore[attr-defined]
        async with uow.begin() as tx:
            with pytest.raises(DBAPIError, match="row-level security"):
                await tx.session.execute(
                    text(
                        "INSERT INTO rls_items (id, sku, name, tenant_id, version, created_at) "
                        f"VALUES ('{uuid7()}', 'b2', 'x', '{B}', 1, now())"
                    )
                )
        async with uow.begin() as tx:
            # Moving A's row to B is refused by WITH CHECK.
            with pytest.raises(DBAPIError, match="row-level security"):
                await tx.session.execute(text(f"UPDATE rls_items SET tenant_id = '{B}'"))
    with request_scope(tenant_id=B):
        async with uow.begin() as tx:
            rows = (await tx.session.execute(text("SELECT sku, name FROM rls_items"))).all()
            assert [tuple(r) for r in rows] == [("b1", "b1")]


async def test_no_tenant_means_no_rows_and_no_writes(app_engine: AsyncEngine) -> None:
    uow = UnitOfWork(make_session_factory(app_engine), rls=True)
    async with uow.begin() as tx:
        assert await _skus(tx.session) == []
        with pytest.raises(DBAPIError, match="row-level security"):
            await tx.session.execute(
                text(
                    "INSERT INTO rls_items (id, sku, name, tenant_id, version, created_at) "
                    f"VALUES ('{uuid7()}', 'n1', 'x', '{A}', 1, now())"
                )
            )
    # Without the unit of work's setting at all (a plain connection): nothing either.
    async with app_engine.connect() as conn:
        assert await _skus(conn) == []


async def test_system_scope_is_the_explicit_bypass(app_engine: AsyncEngine) -> None:
    uow = UnitOfWork(make_session_factory(app_engine), rls=True)
    with system_scope():
        async with uow.begin() as tx:
            assert await _skus(tx.session) == ["a1", "b1"]
            repo = tx.repository(ItemRepository)
            assert len([i async for i in repo.stream()]) == 2
        async with tenant_transaction(app_engine) as conn:
            assert await _skus(conn) == ["a1", "b1"]


async def test_pooled_connection_never_keeps_the_previous_tenant(app_engine: AsyncEngine) -> None:
    pids = set()
    with request_scope(tenant_id=A):
        async with tenant_transaction(app_engine) as conn:
            pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            assert await _skus(conn) == ["a1"]
    # The same server session, next transaction, no helper: the setting is gone.
    async with app_engine.connect() as conn:
        pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        setting = (
            await conn.execute(text("SELECT current_setting('qx.tenant_id', true)"))
        ).scalar_one()
        assert setting in ("", None)
        assert await _skus(conn) == []
        await conn.rollback()
    # After a rolled-back transaction of B, A's next transaction sees only A.
    with request_scope(tenant_id=B):
        async with app_engine.connect() as conn, conn.begin():
            from qxdb.rls import apply_tenant_setting

            await apply_tenant_setting(conn)
            assert await _skus(conn) == ["b1"]
            await conn.rollback()
    uow = UnitOfWork(make_session_factory(app_engine), rls=True)
    with request_scope(tenant_id=A):
        async with uow.begin() as tx:
            pids.add((await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            assert await _skus(tx.session) == ["a1"]
    assert len(pids) == 1  # it really was one pooled connection throughout


async def test_repository_works_behind_rls(app_engine: AsyncEngine) -> None:
    uow = UnitOfWork(make_session_factory(app_engine), rls=True)
    with request_scope(tenant_id=A):
        async with uow.begin() as tx:
            repo = tx.repository(ItemRepository)
            item = Item(sku="a2", name="two")
            assert (await repo.add(item)).is_success
            assert (await repo.get(item.id)).is_success
            assert (await repo.upsert_many([Item(sku="a2", name="again")], on=("sku",))).is_success
            # A conflict with B's row: invisible to A, refused (never updated).
            result = await repo.upsert_many([Item(sku="b1", name="hacked")], on=("sku",))
            assert result.error is not None
        async with uow.begin() as tx:
            assert await _skus(tx.session) == ["a1", "a2"]
    with system_scope():
        async with uow.begin() as tx:
            rows = await tx.session.execute(text("SELECT name FROM rls_items WHERE sku='b1'"))
            assert rows.scalar_one() == "b1"


def test_policy_statements_refuse_bad_names() -> None:
    for bad in ("orders; drop table x", "1x", ""):
        with pytest.raises(ConfigurationError):
            policy_statements(bad)
    with pytest.raises(ConfigurationError):
        policy_statements("orders", column_type="uuid); drop table x; --")
    assert policy_statements("Orders")[0] == 'ALTER TABLE "Orders" ENABLE ROW LEVEL SECURITY'


def test_uow_rls_flag_is_checked() -> None:
    factory = make_session_factory(create_engine(url="sqlite+aiosqlite:///:memory:"))
    with pytest.raises(ConfigurationError, match="rls"):
        UnitOfWork(factory, rls="yes")  # type: ignore[arg-type]


def test_schema_rule_flags_a_tenant_table_without_rls_only_when_opted_in(postgres_url: str) -> None:
    from qxdb.conventions.checker import check_database
    from qxdb.conventions.config import SchemaConfig, parse_config

    plain = make_metadata()
    Table("open_orders", plain, uuid_column("id", primary_key=True), *standard_audit_columns())

    async def setup() -> None:
        engine = create_engine(DatabaseSettings(pool_kind="null"), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(plain.create_all)
                await conn.run_sync(metadata.create_all)
                for sql in policy_statements("rls_items"):
                    await conn.execute(text(sql))
                await conn.execute(text("CREATE TABLE half (id uuid PRIMARY KEY, tenant_id uuid)"))
                await conn.execute(text("ALTER TABLE half ENABLE ROW LEVEL SECURITY"))
        finally:
            await engine.dispose()

    run_coro(setup())
    settings = DatabaseSettings(url=postgres_url)
    default = run_coro(check_database(settings, SchemaConfig()))
    assert not [f for f in default.findings if f.rule_id == "QX026"]  # off by default
    opted = run_coro(check_database(settings, parse_config({"rules": {"tenant-rls": "error"}})))
    found = sorted((f.table, f.message) for f in opted.findings if f.rule_id == "QX026")
    assert found == [
        ("half", "half: row-level security is not FORCEd, so the table's owner bypasses it"),
        ("half", "half: row-level security is on but no policy lets rows through"),
        ("open_orders", "open_orders has a tenant_id column but row-level security is off"),
    ]
    # --rule QX026 runs it too, without any configuration.
    flagged = run_coro(check_database(settings, SchemaConfig().with_flags(only=["QX026"])))
    assert {f.table for f in flagged.findings} == {"half", "open_orders"}


async def test_session_helper_and_sqlite_is_a_no_op(
    app_engine: AsyncEngine, sqlite_url: str
) -> None:
    from qxdb.rls import apply_tenant_setting

    async with make_session_factory(app_engine)() as session:
        with request_scope(tenant_id=B):
            await apply_tenant_setting(session)
            assert await _skus(session) == ["b1"]
    # rls=True on SQLite (no RLS there) changes nothing: the repository still scopes.
    lite = create_engine(DatabaseSettings(), url=sqlite_url)
    try:
        async with lite.begin() as conn:
            await conn.run_sync(metadata.create_all)
        uow = UnitOfWork(make_session_factory(lite), rls=True)
        with request_scope(tenant_id=A):
            async with uow.begin() as tx:
                assert (await tx.repository(ItemRepository).add(Item(sku="s", name="s"))).is_success
                await apply_tenant_setting(tx.session)
        with request_scope(tenant_id=B):
            async with uow.begin() as tx:
                assert [i async for i in tx.repository(ItemRepository).stream()] == []
    finally:
        await lite.dispose()
