"""No lost update: 50 concurrent tasks x 200 read-modify-save cycles on one aggregate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import event, select

from qxdb import DatabaseSettings, UnitOfWork, create_engine, request_scope, uuid7
from qxdb.engine import make_session_factory
from tests.integration.repo_models import User, UserRepository, create_tables, users_table

TASKS = 50
CYCLES = 200
MAX_ATTEMPTS = 10_000


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    # Durability is not under test; skipping the fsync per COMMIT keeps the test quick
    # without changing locking or visibility.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO off")
    cursor.close()


@pytest.mark.slow
@pytest.mark.postgres_only
async def test_concurrent_read_modify_save_loses_no_update(db_url: str) -> None:
    # A small pool: the 50 tasks queue for 2 connections, as a service's requests would.
    engine = create_engine(
        DatabaseSettings(
            pool_size=2,
            max_overflow=0,
            pool_pre_ping=False,
            pool_timeout_seconds=120,
            statement_timeout_ms=None,
        ),
        url=db_url,
    )
    event.listen(engine.sync_engine, "connect", _no_fsync)
    tenant = uuid7()
    try:
        await create_tables(engine)
        uow = UnitOfWork(make_session_factory(engine), repositories={"users": UserRepository})
        counter = User(email="counter@x.org", name="counter", score=0)
        with request_scope(tenant_id=tenant):
            async with uow.begin() as tx:
                await tx.users.add(counter)

        async def worker() -> tuple[int, int]:
            saves = conflicts = 0
            with request_scope(tenant_id=tenant):
                for _ in range(CYCLES):
                    for _attempt in range(MAX_ATTEMPTS):
                        async with uow.begin() as tx:
                            user = (await tx.users.get(counter.id)).value
                            user.score += 1
                            result = await tx.users.save(user)
                            if result.is_failure:
                                await tx.rollback()
                        if result.is_success:
                            saves += 1
                            break
                        conflicts += 1
                    else:
                        raise AssertionError("a cycle never managed to save")
            return saves, conflicts

        started = time.perf_counter()
        results = await asyncio.gather(*(worker() for _ in range(TASKS)))
        elapsed = time.perf_counter() - started
        saves = sum(s for s, _ in results)
        conflicts = sum(c for _, c in results)
        async with engine.connect() as conn:
            row = (await conn.execute(select(users_table.c.score, users_table.c.version))).one()
        assert saves == TASKS * CYCLES
        assert row.version == 1 + saves
        assert row.score == saves
        print(f"{saves} saves, {conflicts} conflicts retried, {elapsed:.1f} s")
    finally:
        await engine.dispose()
