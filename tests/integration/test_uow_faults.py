"""Fault injection around the commit: the aggregate change and its outbox rows are atomic.

Each scenario repeats many times. Failures before the COMMIT (a raising handler, a failing
outbox insert, a killed connection, a cancelled task) must leave neither the change nor
any outbox row; a kill or a cancel racing the COMMIT may leave both or neither, never one
without the other, and a caller that saw success must find both.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from sqlalchemy import CheckConstraint, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    DefaultOutboxRecorder,
    DomainEvent,
    Event,
    IntegrationEvent,
    UnitOfWork,
    include_outbox_table,
    make_metadata,
    request_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import User, UserRepository, create_tables, users_table

REPEAT = 20


class Poison(IntegrationEvent):
    event_name = "poison"


class Noted(IntegrationEvent):
    event_name = "users.noted"
    n: int


class Touched(DomainEvent):
    event_name = "users.touched"


outbox_md = make_metadata()
guarded_outbox = include_outbox_table(outbox_md, "guarded_outbox")
# A real constraint makes a real INSERT fail in the middle of the commit.
guarded_outbox.append_constraint(CheckConstraint("event_name <> 'poison'", name="no_poison"))


TENANT = uuid7()


@pytest.fixture
async def seeded(engine: AsyncEngine, session_factory: SessionFactory) -> User:
    await create_tables(engine)
    async with engine.begin() as conn:
        await conn.run_sync(outbox_md.create_all)
    user = User(email="a@x.org", name="Ann", score=0)
    async with session_factory() as session:
        with request_scope(tenant_id=TENANT):
            await UserRepository(session).add(user)
        await session.commit()
    return user


class RaisingDispatcher:
    async def publish(self, event: DomainEvent) -> None:
        raise RuntimeError(f"handler for {event.event_name} failed")


async def state(engine: AsyncEngine) -> tuple[tuple[int | None, int], int]:
    async with engine.connect() as conn:
        user = (await conn.execute(select(users_table.c.score, users_table.c.version))).one()
        rows = (await conn.execute(select(func.count()).select_from(guarded_outbox))).scalar_one()
    return (user.score, user.version), int(rows)


def make_uow(factory: SessionFactory, dispatcher: Any = None, recorder: Any = None) -> UnitOfWork:
    return UnitOfWork(
        factory,
        dispatcher,
        recorder or DefaultOutboxRecorder(guarded_outbox),
        repositories={"users": UserRepository},
    )


async def change(uow: UnitOfWork, user_id: Any, *events: Event) -> None:
    """Read-modify-save the user and record events, committing on exit."""
    with request_scope(tenant_id=TENANT):
        async with uow.begin() as tx:
            user = (await tx.users.get(user_id)).value
            user.score += 1
            for event in events:
                user.record_event(event)
            assert (await tx.users.save(user)).is_success


async def test_raising_dispatcher_and_failing_outbox_leave_nothing(
    engine: AsyncEngine, session_factory: SessionFactory, seeded: User
) -> None:
    raising = make_uow(session_factory, RaisingDispatcher())
    plain = make_uow(session_factory)
    for i in range(REPEAT):
        with pytest.raises(RuntimeError, match=r"handler for users\.touched failed"):
            await change(raising, seeded.id, Noted(n=i), Touched(), Noted(n=i + 1))
        with pytest.raises(Exception, match=r"no_poison|CHECK constraint failed"):
            await change(plain, seeded.id, Noted(n=i), Poison(), Noted(n=i + 1))
        assert await state(engine) == ((0, 1), 0)
    # A clean commit leaves both.
    await change(plain, seeded.id, Noted(n=1), Noted(n=2))
    assert await state(engine) == ((1, 2), 2)


async def test_cancelled_commit_leaves_both_or_neither(
    engine: AsyncEngine, session_factory: SessionFactory, seeded: User
) -> None:
    reached = asyncio.Event()
    hold = asyncio.Event()

    class Gate:
        async def publish(self, event: DomainEvent) -> None:
            reached.set()
            if hold.is_set():
                await asyncio.Event().wait()  # never returns: the task is cancelled here

    uow = make_uow(session_factory, Gate())
    previous = 0
    cancelled = 0
    rng = random.Random(7)
    for i in range(REPEAT * 2):
        reached.clear()
        # Half the rounds are cancelled deterministically inside the commit (before the
        # COMMIT); the other half at a random moment around it.
        deterministic = i % 2 == 0
        if deterministic:
            hold.set()
        else:
            hold.clear()
        task = asyncio.create_task(change(uow, seeded.id, Touched(), Noted(n=i)))
        waiter = asyncio.create_task(reached.wait())
        await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not reached.is_set():
            # The operation ended (or stalled) before its commit began: surface why.
            task.cancel() if not task.done() else task.result()
            pytest.fail(f"round {i}: the operation never reached its commit")
        if not deterministic:
            await asyncio.sleep(rng.random() * 0.003)
        task.cancel()
        try:
            await task
            outcome = "success"
        except asyncio.CancelledError:
            outcome = "cancelled"
        (score, version), rows = await state(engine)
        assert score is not None
        # Score, version and outbox rows move together, whatever happened.
        assert version == score + 1
        assert rows == score
        if outcome == "success":
            assert score == previous + 1
        else:
            cancelled += 1
            assert score == previous if deterministic else score in (previous, previous + 1)
        previous = score
    assert cancelled >= REPEAT


@pytest.mark.postgres_only
async def test_killed_connection_around_commit_leaves_both_or_neither(
    engine: AsyncEngine, session_factory: SessionFactory, seeded: User, postgres_url: str
) -> None:
    admin = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))

    async def kill(pid: int) -> None:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)

    async def kill_later(pid: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await kill(pid)

    async def backend_pid(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())

    class KillingDispatcher:
        async def publish(self, event: DomainEvent) -> None:
            await kill(await backend_pid(uow_in_dispatch.session))

    class KillAfterInsert(DefaultOutboxRecorder):
        async def record(self, session: AsyncSession, events: Sequence[Event]) -> None:
            await super().record(session, events)
            await kill(await backend_pid(session))

    uow_in_dispatch = make_uow(session_factory, KillingDispatcher())
    uow_after_insert = make_uow(session_factory, None, KillAfterInsert(guarded_outbox))
    racing = make_uow(session_factory)
    rng = random.Random(11)
    try:
        for i in range(REPEAT):
            # Killed before the COMMIT: an error, and nothing written.
            for uow, events in (
                (uow_in_dispatch, (Touched(), Noted(n=i))),
                (uow_after_insert, (Noted(n=i),)),
            ):
                before = await state(engine)
                with pytest.raises(DBAPIError):
                    await change(uow, seeded.id, *events)
                assert await state(engine) == before

            # Killed at a random moment around the COMMIT.
            before = await state(engine)
            killer: asyncio.Task[None] | None = None
            with request_scope(tenant_id=TENANT):
                try:
                    async with racing.begin() as tx:
                        user = (await tx.users.get(seeded.id)).value
                        user.score += 1
                        user.record_event(Noted(n=i))
                        await tx.users.save(user)
                        killer = asyncio.create_task(
                            kill_later(await backend_pid(tx.session), rng.random() * 0.001)
                        )
                    outcome = "success"
                except Exception:
                    outcome = "error"
                assert killer is not None, "the transaction failed before the kill was armed"
                await killer
            (score, version), rows = await state(engine)
            assert score is not None
            assert version == score + 1
            assert rows == score
            if outcome == "success":
                assert score == before[0][0] + 1  # type: ignore[operator]
    finally:
        await admin.close()
