"""Repository get / add / save / list / keyset page against SQLAlchemy Core and raw asyncpg.

Run: ``python benchmarks/repository.py [--quick]`` (PostgreSQL from
``QXDB_BENCH_DATABASE_URL``, else a ``qxdb_bench_repository`` database on the local server,
created if missing).

Three sides issue the same SQL on one connection each, inside transactions of ``BATCH``
operations:

- **Core**: SQLAlchemy Core on an ``AsyncConnection`` with every statement built ONCE with
  bind parameters (the best a user of Core could write; it reads plain ``Row`` tuples and
  builds no object);
- **Repository**: ``Repository[User]`` through its ``AsyncSession``, building entities,
  checking values, tenant-scoped;
- **asyncpg**: raw asyncpg prepared statements, for context only (no SQLAlchemy at all).

Operations: ``get`` by id; ``add`` (INSERT; the repository's has ``ON CONFLICT DO
NOTHING``, Core's too, so both detect duplicates); ``save`` (read + versioned UPDATE);
``list50`` (first page of 50 by email, no COUNT, the default); ``list50+count`` (the same
with the exact total); ``page50`` (a keyset page of 50 after a cursor). Sides run
interleaved, in a rotating order, for ``ROUNDS`` rounds; each line prints min / median /
max throughput of each side and of the ratio Repository / Core per round. Target: median
ratio >= 0.85 for the pages. The machine's load average is printed: on a shared machine,
read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
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
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from qxdb import (
    AggregateRoot,
    CursorCodec,
    CursorPagination,
    DatabaseSettings,
    OffsetPagination,
    Repository,
    Sort,
    create_engine,
    make_metadata,
    make_session_factory,
    request_scope,
    standard_audit_columns,
    utcnow,
    uuid7,
    uuid_column,
)

# (wall seconds, CPU seconds of this process) of one round of one side
Timing = tuple[float, float]

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/qxdb_bench_repository"
ROWS = 10_000
PAGE = 50

metadata = make_metadata()
users = Table(
    "bench_users",
    metadata,
    uuid_column("id", primary_key=True),
    Column("email", String(255), nullable=False, index=True),
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
    cursor_codec = CursorCodec(secret="bench-secret")


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
        "email": f"user{i:07d}@example.org",
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


COLUMNS = list(users.c.keys())
SQL_GET = (
    f"SELECT {', '.join(COLUMNS)} FROM bench_users "
    "WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
)
SQL_INSERT = (
    f"INSERT INTO bench_users ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}) ON CONFLICT DO NOTHING"
)
SQL_UPDATE = (
    "UPDATE bench_users SET email = $1, name = $2, is_active = $3, score = $4, version = $5, "
    "updated_at = $6, updated_by = $7 WHERE id = $8 AND version = $9 AND tenant_id = $10"
)
SQL_LIST = (
    f"SELECT {', '.join(COLUMNS)} FROM bench_users WHERE tenant_id = $1 AND deleted_at IS NULL "
    "ORDER BY email, id LIMIT $2 OFFSET $3"
)
SQL_COUNT = "SELECT count(*) FROM bench_users WHERE tenant_id = $1 AND deleted_at IS NULL"
SQL_PAGE = (
    f"SELECT {', '.join(COLUMNS)} FROM bench_users WHERE tenant_id = $1 AND deleted_at IS NULL "
    "AND (email, id) > ($2, $3) ORDER BY email, id LIMIT $4"
)


class Bench:
    def __init__(
        self, engine: AsyncEngine, pg: asyncpg.Connection, tenant: Any, ids: list[Any], batch: int
    ) -> None:
        self.engine = engine
        self.pg = pg
        self.factory = make_session_factory(engine)
        self.tenant = tenant
        self.ids = ids
        self.batch = batch
        self.page_batch = max(5, batch // 10)
        self.counter = ROWS
        c = users.c
        live = (c.tenant_id == bindparam("tenant"), c.deleted_at.is_(None))
        self.get_stmt = select(users).where(c.id == bindparam("id"), *live)
        self.insert_stmt = pg_insert(users).on_conflict_do_nothing()
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
                    for k in (
                        "email",
                        "name",
                        "is_active",
                        "score",
                        "version",
                        "updated_at",
                        "updated_by",
                    )
                }
            )
        )
        order = (c.email, c.id)
        self.list_stmt = select(users).where(*live).order_by(*order).limit(PAGE + 1).offset(0)
        self.count_stmt = select(func.count()).select_from(users).where(*live)
        self.page_stmt = (
            select(users)
            .where(*live, tuple_(c.email, c.id) > tuple_(bindparam("e"), bindparam("i")))
            .order_by(*order)
            .limit(PAGE + 1)
        )

    async def prepare_pages(self) -> None:
        """The cursor the page cases start after: row 100 in email order."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(self.list_stmt.offset(100), {"tenant": self.tenant})).first()
            assert row is not None
            self.after = (row.email, row.id)
        with request_scope(tenant_id=self.tenant):
            async with self.factory() as session:
                repo = UserRepository(session)
                page = await repo.list_cursor(CursorPagination(limit=100, sort=[Sort("email")]))
                self.cursor = page.next_cursor

    # ---------------------------------------------------------------- Core, prepared once

    async def core_get(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[: self.batch]:
            row = (await conn.execute(self.get_stmt, {"id": id_, "tenant": self.tenant})).first()
            assert row is not None

    async def core_add(self, conn: AsyncConnection) -> None:
        for _ in range(self.batch):
            self.counter += 1
            await conn.execute(self.insert_stmt, user_values(self.tenant, self.counter))

    async def core_save(self, conn: AsyncConnection) -> None:
        for id_ in self.ids[: self.batch]:
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
                "set_updated_by": None,
            }
            assert (await conn.execute(self.update_stmt, params)).rowcount == 1

    async def core_list(self, conn: AsyncConnection) -> None:
        for _ in range(self.page_batch):
            rows = (await conn.execute(self.list_stmt, {"tenant": self.tenant})).all()
            assert len(rows) == PAGE + 1

    async def core_list_count(self, conn: AsyncConnection) -> None:
        for _ in range(self.page_batch):
            total = (await conn.execute(self.count_stmt, {"tenant": self.tenant})).scalar_one()
            rows = (await conn.execute(self.list_stmt, {"tenant": self.tenant})).all()
            assert len(rows) == PAGE + 1 and total >= ROWS

    async def core_page(self, conn: AsyncConnection) -> None:
        email, id_ = self.after
        for _ in range(self.page_batch):
            params = {"tenant": self.tenant, "e": email, "i": id_}
            rows = (await conn.execute(self.page_stmt, params)).all()
            assert len(rows) == PAGE + 1

    # ------------------------------------------------------------------------ Repository

    async def repo_get(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        for id_ in self.ids[: self.batch]:
            assert (await repo.get(id_)).is_success

    async def repo_add(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        for _ in range(self.batch):
            self.counter += 1
            await repo.add(User(email=f"user{self.counter:07d}@example.org", name="U", score=1))

    async def repo_save(self, session: AsyncSession) -> None:
        # Read-modify-save, as a service does it: the Core side also reads the version.
        repo = UserRepository(session)
        for id_ in self.ids[: self.batch]:
            user = (await repo.get(id_)).value
            user.name = "Saved"
            assert (await repo.save(user)).is_success

    async def repo_list(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        pagination = OffsetPagination(page_size=PAGE, sort=[Sort("email")])
        for _ in range(self.page_batch):
            page = await repo.list(pagination)
            assert len(page.items) == PAGE and page.has_next

    async def repo_list_count(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        pagination = OffsetPagination(page_size=PAGE, sort=[Sort("email")], include_total=True)
        for _ in range(self.page_batch):
            page = await repo.list(pagination)
            assert len(page.items) == PAGE and (page.total or 0) >= ROWS

    async def repo_page(self, session: AsyncSession) -> None:
        repo = UserRepository(session)
        pagination = CursorPagination(limit=PAGE, sort=[Sort("email")], cursor=self.cursor)
        for _ in range(self.page_batch):
            page = await repo.list_cursor(pagination)
            assert len(page.items) == PAGE and page.has_next

    # --------------------------------------------------------------- raw asyncpg (context)

    async def pg_get(self) -> None:
        stmt = await self.pg.prepare(SQL_GET)
        for id_ in self.ids[: self.batch]:
            assert await stmt.fetchrow(id_, self.tenant) is not None

    async def pg_add(self) -> None:
        stmt = await self.pg.prepare(SQL_INSERT)
        for _ in range(self.batch):
            self.counter += 1
            values = user_values(self.tenant, self.counter)
            await stmt.fetch(*(values[c] for c in COLUMNS))

    async def pg_save(self) -> None:
        get = await self.pg.prepare(SQL_GET)
        upd = await self.pg.prepare(SQL_UPDATE)
        for id_ in self.ids[: self.batch]:
            row = await get.fetchrow(id_, self.tenant)
            v = row["version"]
            await upd.fetch(
                row["email"], "Saved", row["is_active"], row["score"], v + 1, utcnow(), None,
                id_, v, self.tenant,
            )  # fmt: skip

    async def pg_list(self) -> None:
        stmt = await self.pg.prepare(SQL_LIST)
        for _ in range(self.page_batch):
            assert len(await stmt.fetch(self.tenant, PAGE + 1, 0)) == PAGE + 1

    async def pg_list_count(self) -> None:
        count = await self.pg.prepare(SQL_COUNT)
        stmt = await self.pg.prepare(SQL_LIST)
        for _ in range(self.page_batch):
            await count.fetchval(self.tenant)
            assert len(await stmt.fetch(self.tenant, PAGE + 1, 0)) == PAGE + 1

    async def pg_page(self) -> None:
        stmt = await self.pg.prepare(SQL_PAGE)
        email, id_ = self.after
        for _ in range(self.page_batch):
            assert len(await stmt.fetch(self.tenant, email, id_, PAGE + 1)) == PAGE + 1

    # ------------------------------------------------------------------------- runners

    async def run_core(self, body: Callable[[AsyncConnection], Awaitable[None]]) -> Timing:
        async with self.engine.connect() as conn:
            started, cpu = time.perf_counter(), time.process_time()
            async with conn.begin():
                await body(conn)
            return time.perf_counter() - started, time.process_time() - cpu

    async def run_repo(self, body: Callable[[AsyncSession], Awaitable[None]]) -> Timing:
        with request_scope(tenant_id=self.tenant):
            async with self.factory() as session:
                started, cpu = time.perf_counter(), time.process_time()
                async with session.begin():
                    await body(session)
                return time.perf_counter() - started, time.process_time() - cpu

    async def run_pg(self, body: Callable[[], Awaitable[None]]) -> Timing:
        started, cpu = time.perf_counter(), time.process_time()
        async with self.pg.transaction():
            await body()
        return time.perf_counter() - started, time.process_time() - cpu


def _spread(values: list[float]) -> str:
    return f"{min(values):8,.0f} {statistics.median(values):8,.0f} {max(values):8,.0f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of small batches")
    args = parser.parse_args()
    rounds, batch = (3, 100) if args.quick else (7, 300)
    url = os.environ.get("QXDB_BENCH_DATABASE_URL", DEFAULT_URL)
    await ensure_database(url)
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, statement_timeout_ms=None), url=url
    )
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg = await asyncpg.connect(plain)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        tenant = uuid7()
        rows = [user_values(tenant, i) for i in range(ROWS)]
        async with engine.begin() as conn:
            await conn.execute(users.insert(), rows)
            await conn.exec_driver_sql("ANALYZE bench_users")
        bench = Bench(engine, pg, tenant, [r["id"] for r in rows], batch)
        await bench.prepare_pages()
        cases: list[tuple[str, int, Any, Any, Any]] = [
            ("get", batch, bench.core_get, bench.repo_get, bench.pg_get),
            ("add", batch, bench.core_add, bench.repo_add, bench.pg_add),
            ("save", batch, bench.core_save, bench.repo_save, bench.pg_save),
            ("list50", bench.page_batch, bench.core_list, bench.repo_list, bench.pg_list),
            (
                "list50+count",
                bench.page_batch,
                bench.core_list_count,
                bench.repo_list_count,
                bench.pg_list_count,
            ),
            ("page50", bench.page_batch, bench.core_page, bench.repo_page, bench.pg_page),
        ]
        times: dict[str, dict[str, list[Timing]]] = {
            name: {"core": [], "repo": [], "pg": []} for name, *_ in cases
        }
        for _name, _n, core, repo, raw in cases:  # warm-up: compile caches, plans
            await bench.run_core(core)
            await bench.run_repo(repo)
            await bench.run_pg(raw)
        for r in range(rounds):
            for name, _n, core, repo, raw in cases:
                sides = [
                    ("core", lambda core=core: bench.run_core(core)),
                    ("repo", lambda repo=repo: bench.run_repo(repo)),
                    ("pg", lambda raw=raw: bench.run_pg(raw)),
                ]
                shift = r % 3  # rotate who goes first, so drift hits every side alike
                for side, run in sides[shift:] + sides[:shift]:
                    times[name][side].append(await run())
        load = os.getloadavg()
        print(
            f"PostgreSQL {make_url(url).render_as_string()}; {ROWS:,} rows; {rounds} rounds; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
        )
        print(
            "operations/s per round (wall clock): min median max; ratio = Repository / Core "
            "per round;\nclient CPU = median client-process CPU ms per operation, Core vs "
            "Repository (the library's own cost, less sensitive to the machine's load)"
        )
        print(
            f"{'op':13} {'Core (prepared once)':>26} {'Repository':>26} {'ratio':>16}   "
            f"{'asyncpg (context)':>26}   {'client CPU ms/op':>18}"
        )
        verdicts: list[str] = []
        for name, n, *_ in cases:
            t = times[name]
            core_ops = [n / w for w, _ in t["core"]]
            repo_ops = [n / w for w, _ in t["repo"]]
            pg_ops = [n / w for w, _ in t["pg"]]
            ratios = [c[0] / r[0] for c, r in zip(t["core"], t["repo"], strict=True)]
            core_cpu = statistics.median(c for _, c in t["core"]) / n * 1000
            repo_cpu = statistics.median(c for _, c in t["repo"]) / n * 1000
            print(
                f"{name:13} {_spread(core_ops):>26} {_spread(repo_ops):>26} "
                f"{min(ratios):5.2f} {statistics.median(ratios):4.2f} {max(ratios):4.2f}   "
                f"{_spread(pg_ops):>26}   {core_cpu:8.3f} {repo_cpu:8.3f}"
            )
            if name in ("list50", "list50+count", "page50"):
                verdicts.append(f"{name} {statistics.median(ratios):.2f}")
        print("target: pages >= 0.85 of Core (median): " + ", ".join(verdicts))
        return 0
    finally:
        await pg.close()
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
