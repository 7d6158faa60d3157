"""The cost of row-level security on a repository ``get`` and a keyset page (issue 19).

Run: ``python benchmarks/rls.py [--quick]`` (PostgreSQL from ``QXDB_BENCH_DATABASE_URL``,
else a ``qxdb_bench_rls`` database on the local server, created if missing).

Two identical tables of ``ROWS`` rows over ``TENANTS`` tenants; one is behind the tenant
policy (``qxdb.rls.policy_statements``). Both are read as an ordinary role (a superuser
is never filtered, so would measure nothing), each operation in its own unit of work:

- ours: ``UnitOfWork(rls=True)`` on the RLS table (a ``set_config`` round trip at the
  start of each transaction, and the policy in every plan);
- baseline: ``UnitOfWork()`` on the plain table, the same repository calls.

The ratio is the whole cost of the second wall per unit of work, for one ``get`` and for
one ``list_cursor`` page of 50.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from _common import Comparison, ensure_database, load, plain_dsn, print_header, quick, rounds
from sqlalchemy import Column, Integer, String, Table, text
from sqlalchemy.engine import make_url

from qxdb import (
    AggregateRoot,
    CursorPagination,
    DatabaseSettings,
    Repository,
    create_engine,
    make_metadata,
    make_session_factory,
    request_scope,
    standard_audit_columns,
    utcnow,
    uuid7,
    uuid_column,
)
from qxdb.rls import policy_statements
from qxdb.uow import UnitOfWork

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_rls"
ROLE = "qxdb_bench_rls_app"
ROWS = 20_000 if quick() else 100_000
TENANTS = 20
OPS = 200 if quick() else 500

metadata = make_metadata()


def _table(name: str) -> Table:
    return Table(
        name,
        metadata,
        uuid_column("id", primary_key=True),
        Column("sku", String(40), nullable=False),
        Column("qty", Integer, nullable=True),
        *standard_audit_columns(),
    )


plain_table, rls_table = _table("rls_bench_plain"), _table("rls_bench_secured")


@dataclass(kw_only=True, eq=False)
class Item(AggregateRoot):
    sku: str
    qty: int | None = None


class PlainRepository(Repository[Item]):
    entity_cls = Item
    table = plain_table
    sortable_fields = {"sku"}


class SecuredRepository(Repository[Item]):
    entity_cls = Item
    table = rls_table
    sortable_fields = {"sku"}


async def _setup(url: str) -> tuple[list[UUID], list[list[UUID]]]:
    tenants = [UUID(int=(0x018F << 112) + n + 1) for n in range(TENANTS)]
    ids = [[uuid7() for _ in range(ROWS // TENANTS)] for _ in tenants]
    raw = await asyncpg.connect(plain_dsn(url))
    try:
        engine = create_engine(DatabaseSettings(pool_kind="null"), url=url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            for sql in policy_statements(rls_table.name):
                await conn.execute(text(sql))
        await engine.dispose()
        if not await raw.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE):
            await raw.execute(f"CREATE ROLE {ROLE} LOGIN")
        now = utcnow()
        for table in (plain_table.name, rls_table.name):
            await raw.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {ROLE}")
            records = [
                (i, f"sku{n:07d}", n, now, None, None, None, 1, tenant, None, None)
                for tenant, tenant_ids in zip(tenants, ids, strict=True)
                for n, i in enumerate(tenant_ids)
            ]
            await raw.copy_records_to_table(
                table, records=records, columns=[c.name for c in plain_table.c]
            )
            await raw.execute(f"ANALYZE {table}")
    finally:
        await raw.close()
    return tenants, ids


async def main() -> int:
    admin_url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(admin_url)
    tenants, ids = await _setup(admin_url)
    url = make_url(admin_url).set(username=ROLE).render_as_string(hide_password=False)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    factory = make_session_factory(engine)
    secured = UnitOfWork(factory, rls=True)
    plain = UnitOfWork(factory)
    tenant, keys = tenants[3], ids[3]
    lines = {
        "get": Comparison(f"get by id, one unit of work each, x{OPS}", count=OPS, per="ops"),
        "page": Comparison(
            f"list_cursor page of 50, one unit of work each, x{OPS}", count=OPS, per="ops"
        ),
    }

    async def gets(uow: UnitOfWork, repo: type[Repository[Item]]) -> None:
        for n in range(OPS):
            async with uow.begin() as tx:
                assert (await tx.repository(repo).get(keys[(n * 37) % len(keys)])).is_success

    async def pages(uow: UnitOfWork, repo: type[Repository[Item]]) -> None:
        for _ in range(OPS):
            async with uow.begin() as tx:
                page = await tx.repository(repo).list_cursor(CursorPagination(limit=50))
                assert len(page.items) == 50

    print_header(
        f"row-level security: {ROWS:,} rows over {TENANTS} tenants, as an ordinary role",
        "the same repository calls on an identical table without RLS, UnitOfWork(rls=False)",
    )
    with request_scope(tenant_id=tenant):
        await gets(secured, SecuredRepository)  # warm both up (plans, statement caches)
        await gets(plain, PlainRepository)
        for r in range(rounds(5)):
            order = [True, False] if r % 2 == 0 else [False, True]
            for kind, work in (("get", gets), ("page", pages)):
                spent = {}
                for rls in order:
                    started = time.perf_counter()
                    if rls:
                        await work(secured, SecuredRepository)
                    else:
                        await work(plain, PlainRepository)
                    spent[rls] = time.perf_counter() - started
                lines[kind].add(spent[True], spent[False])
    await engine.dispose()
    print(f"min/median/max of {rounds(5)} interleaved rounds; ratio = RLS / plain time")
    for line in lines.values():
        print(line.line())
        per_op = (line.ours.median - line.base.median) / OPS * 1e6
        print(f"{'':46} RLS adds {per_op:.0f} us per unit of work (median)")
    print(f"machine: {load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
