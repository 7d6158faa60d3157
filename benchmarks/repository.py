"""Repository.get / add / save against raw SQLAlchemy Core issuing the same statements.

Run: ``python benchmarks/repository.py`` (PostgreSQL from ``QXDB_BENCH_DATABASE_URL``, else
a ``qxdb_bench_repository`` database on the local server, created if missing).

Every side runs the same SQL (tenant-scoped, soft-delete-aware SELECT by id; INSERT;
versioned UPDATE) on one pooled connection, inside transactions of ``BATCH`` operations,
interleaved in rounds so machine noise hits all alike. Two baselines on an
``AsyncConnection`` reading plain rows: "raw Core" builds each statement per call, as
typical Core code does; "prepared" reuses statements built once with bind parameters,
as the repository does internally (the strict measure of the repository's overhead). The
repository goes through its ``AsyncSession`` and builds entities. Target: at least 0.85
of raw Core for each operation.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from qxdb import (
    AggregateRoot,
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

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_repository"
BATCH = 300
ROUNDS = 10

metadata = make_metadata()
users = Table(
    "bench_users",
    metadata,
    uuid_column("id", primary_key=True),
    Column("email", String(255), nullable=False),
    Column("name", String(100), nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("score", Integer, nullable=True),
    *standard_audit_columns(),
)


@dataclass(kw_only=True, eq=False)
class User(AggregateRoot):
    email: str
    name: str
    is_active: bool = True
    score: int | None = None


class UserRepository(Repository[User]):
    entity_cls = User
    table = users
    filterable_fields = {"email"}
    sortable_fields = {"email"}
    tenanted = True


async def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            # CREATE DATABASE takes no parameters; the name is quoted by asyncpg's helper.
            name = target.database or "qxdb_bench_repository"
            await conn.execute("CREATE DATABASE " + asyncpg.utils._quote_ident(name))
    finally:
        await conn.close()


def user_values(tenant: Any, i: int) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "email": f"user{i}@example.org",
        "name": f"User {i}",
        "is_active": True,
        "score": i,
        "created_at": utcnow(),
        "updated_at": None,
        "deleted_at": None,
        "created_by": None,
        "updated_by": None,
        "deleted_by": None,
        "version": 1,
        "tenant_id": tenant,
    }


class Bench:
    def __init__(self, engine: AsyncEngine, tenant: Any, ids: list[Any]) -> None:
        self.engine = engine
        self.factory = make_session_factory(engine)
        self.tenant = tenant
        self.ids = ids
        self.counter = 0

    # --- raw Core: the statements the repository issues, on an AsyncConnection

    async def raw_get(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[:BATCH]:
            stmt = select(users).where(
                users.c.tenant_id == self.tenant, users.c.deleted_at.is_(None), users.c.id == id_
            )
            row = (await conn.execute(stmt)).first()
            assert row is not None

    async def raw_add(self, conn: AsyncConnection) -> None:
        for _ in range(BATCH):
            self.counter += 1
            await conn.execute(insert(users).values(user_values(self.tenant, self.counter)))

    async def raw_save(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[:BATCH]:
            stmt = select(users).where(
                users.c.tenant_id == self.tenant, users.c.deleted_at.is_(None), users.c.id == id_
            )
            row = (await conn.execute(stmt)).one()
            changes = {
                "email": row.email,
                "name": "Saved",
                "is_active": row.is_active,
                "score": row.score,
                "version": row.version + 1,
                "updated_at": utcnow(),
                "updated_by": None,
            }
            update_stmt = (
                update(users)
                .where(
                    users.c.id == id_,
                    users.c.version == row.version,
                    users.c.tenant_id == self.tenant,
                )
                .values(changes)
            )
            assert (await conn.execute(update_stmt)).rowcount == 1

    # --- raw Core with prepared statements: built once with bind parameters, as the
    # repository builds its own; the closest measure of the repository's own overhead.

    def prepare(self) -> None:
        c = users.c
        self.get_stmt = select(users).where(
            c.id == bindparam("id"), c.tenant_id == bindparam("tenant"), c.deleted_at.is_(None)
        )
        self.insert_stmt = insert(users)
        self.update_stmt = (
            update(users)
            .where(
                c.id == bindparam("b_id"),
                c.version == bindparam("b_expected"),
                c.tenant_id == bindparam("b_tenant"),
            )
            .values(
                {
                    k: bindparam("set_" + k)
                    for k in ("email", "name", "is_active", "score", "version", "updated_at")
                }
            )
        )

    async def prepared_get(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[:BATCH]:
            row = (await conn.execute(self.get_stmt, {"id": id_, "tenant": self.tenant})).first()
            assert row is not None

    async def prepared_add(self, conn: AsyncConnection) -> None:
        for _ in range(BATCH):
            self.counter += 1
            await conn.execute(self.insert_stmt, user_values(self.tenant, self.counter))

    async def prepared_save(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[:BATCH]:
            row = (await conn.execute(self.get_stmt, {"id": id_, "tenant": self.tenant})).one()
            params = {
                "b_id": id_,
                "b_expected": row.version,
                "b_tenant": self.tenant,
                "set_email": row.email,
                "set_name": "Saved",
                "set_is_active": row.is_active,
                "set_score": row.score,
                "set_version": row.version + 1,
                "set_updated_at": utcnow(),
            }
            assert (await conn.execute(self.update_stmt, params)).rowcount == 1

    # --- the repository, through its session

    async def repo_get(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        for id_ in self.ids[:BATCH]:
            assert (await repo.get(id_)).is_success

    async def repo_add(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        for _ in range(BATCH):
            self.counter += 1
            await repo.add(User(email=f"user{self.counter}@example.org", name="U", score=1))

    async def repo_save(self, session: AsyncSession) -> None:
        # Read-modify-save, as a service does it: the raw side also reads the version.
        repo = UserRepository(session)
        for id_ in self.ids[:BATCH]:
            user = (await repo.get(id_)).value
            user.name = "Saved"
            assert (await repo.save(user)).is_success

    async def run_raw(self, body: Callable[[AsyncConnection], Awaitable[None]]) -> float:
        async with self.engine.connect() as conn:
            started = time.perf_counter()
            async with conn.begin():
                await body(conn)
            return time.perf_counter() - started

    async def run_repo(self, body: Callable[[AsyncSession], Awaitable[None]]) -> float:
        with request_scope(tenant_id=self.tenant):
            async with self.factory() as session:
                started = time.perf_counter()
                async with session.begin():
                    await body(session)
                return time.perf_counter() - started


async def main() -> int:
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        tenant = uuid7()
        rows = [user_values(tenant, i) for i in range(BATCH)]
        async with engine.begin() as conn:
            await conn.execute(insert(users), rows)
        bench = Bench(engine, tenant, [r["id"] for r in rows])
        bench.prepare()
        cases = [
            ("get", bench.raw_get, bench.prepared_get, bench.repo_get),
            ("add", bench.raw_add, bench.prepared_add, bench.repo_add),
            # save = read + versioned update: two statements per operation on every side
            ("save", bench.raw_save, bench.prepared_save, bench.repo_save),
        ]
        times: dict[str, list[list[float]]] = {name: [[], [], []] for name, *_ in cases}
        for _name, raw, prepared, repo in cases:  # warm-up: compile caches, connection
            await bench.run_raw(raw)
            await bench.run_raw(prepared)
            await bench.run_repo(repo)
        for _ in range(ROUNDS):
            for name, raw, prepared, repo in cases:
                times[name][0].append(await bench.run_raw(raw))
                times[name][1].append(await bench.run_raw(prepared))
                times[name][2].append(await bench.run_repo(repo))
        print(f"PostgreSQL {make_url(url).render_as_string()}; {ROUNDS} rounds x {BATCH} ops")
        print("median round, in ops/s (the machine is shared: medians resist noise)")
        print(
            f"{'op':5} {'raw Core':>9} {'prepared':>9} {'Repository':>11}   "
            f"{'ratio vs raw':>12} {'vs prepared':>11}"
        )
        worst = float("inf")
        for name, *_ in cases:
            raw_s, prepared_s, repo_s = (statistics.median(t) for t in times[name])
            ratio, ratio_prepared = raw_s / repo_s, prepared_s / repo_s
            worst = min(worst, ratio, ratio_prepared)
            print(
                f"{name:5} {BATCH / raw_s:9,.0f} {BATCH / prepared_s:9,.0f} "
                f"{BATCH / repo_s:11,.0f}   {ratio:12.2f} {ratio_prepared:11.2f}"
            )
        print(f"target: ratio >= 0.85 against both baselines; worst {worst:.2f}")
        return 0
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
