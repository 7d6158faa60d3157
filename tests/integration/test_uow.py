"""UnitOfWork: both forms, event draining and dispatch, outbox rows, per-task scopes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    ConfigurationError,
    DefaultOutboxRecorder,
    DispatchLoopError,
    DomainEvent,
    EventDispatcher,
    IntegrationEvent,
    UnitOfWork,
    UnitOfWorkStateError,
    request_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import (
    User,
    UserRepository,
    create_tables,
    outbox,
    users_table,
)

Handler = Callable[[DomainEvent], Awaitable[None]]


class Dispatcher:
    """A minimal in-process dispatcher: event name -> handlers, called in turn."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}
        self.seen: list[DomainEvent] = []

    def on(self, name: str, handler: Handler) -> None:
        self.handlers.setdefault(name, []).append(handler)

    async def publish(self, event: DomainEvent) -> None:
        self.seen.append(event)
        for handler in self.handlers.get(event.event_name, []):
            await handler(event)


class Welcomed(IntegrationEvent):
    event_name = "users.welcomed"
    user_id: UUID


class Audited(DomainEvent):
    event_name = "users.audited"


def make_uow(factory: SessionFactory, dispatcher: EventDispatcher | None = None) -> UnitOfWork:
    return UnitOfWork(
        factory, dispatcher, DefaultOutboxRecorder(outbox), repositories={"users": UserRepository}
    )


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        users = (await conn.execute(select(func.count()).select_from(users_table))).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return int(users), int(rows)


async def test_begin_commits_on_clean_exit_and_writes_the_outbox(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    uow = make_uow(session_factory)
    tenant, actor, correlation = uuid7(), uuid7(), uuid7()
    with request_scope(tenant_id=tenant, user_id=actor, correlation_id=correlation):
        async with uow.begin() as tx:
            user = User.register("a@x.org", "Ann")
            await tx.users.add(user)
    assert not user.has_pending_events
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    assert row.event_name == "users.registered"
    assert (row.tenant_id, row.correlation_id) == (tenant, correlation)
    assert row.payload["payload"] == {"email": "a@x.org"}
    assert row.payload["actor_id"] == str(actor)
    assert row.payload["aggregate_id"] == str(user.id)
    assert row.ordering_key == str(user.id)
    assert row.published_at is None
    assert await counts(engine) == (1, 1)


async def test_exceptions_and_missing_commits_roll_back(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    uow = make_uow(session_factory)
    with request_scope(tenant_id=uuid7()):
        with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
            async with uow.begin() as tx:
                await tx.users.add(User.register("a@x.org", "Ann"))
                raise RuntimeError("boom")
        async with uow:
            await uow.users.add(User.register("b@x.org", "Bob"))
        assert await counts(engine) == (0, 0)
        async with uow:
            await uow.users.add(User.register("c@x.org", "Cy"))
            await uow.commit()
        assert await counts(engine) == (1, 1)


async def test_domain_events_dispatch_in_order_and_handler_events_are_drained(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    dispatcher = Dispatcher()
    uow = make_uow(session_factory, dispatcher)

    async def on_renamed(event: DomainEvent) -> None:
        # A handler works inside the same transaction, through the same unit of work.
        assert event.aggregate_id is not None
        user = (await uow.users.get(event.aggregate_id)).value
        user.record_event(Audited())
        user.record_event(Welcomed(user_id=user.id))
        user.score = (user.score or 0) + 1
        assert (await uow.users.save(user)).is_success

    dispatcher.on("users.renamed", on_renamed)
    with request_scope(tenant_id=uuid7()):
        async with uow.begin() as tx:
            first = User(email="a@x.org", name="A")
            second = User(email="b@x.org", name="B")
            await tx.users.add_many([first, second])
        async with uow.begin() as tx:
            one = (await tx.users.get(first.id)).value
            two = (await tx.users.get(second.id)).value
            one.rename("A1")
            two.rename("B1")
            one.rename("A2")
            await tx.users.save(one)
            await tx.users.save(two)

    assert [(e.event_name, getattr(e, "name", None)) for e in dispatcher.seen] == [
        ("users.renamed", "A1"),
        ("users.renamed", "B1"),
        ("users.renamed", "A2"),
        ("users.audited", None),
        ("users.audited", None),
        ("users.audited", None),
    ]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.event_name).order_by(outbox.c.id))).all()
        scores = dict((await conn.execute(select(users_table.c.name, users_table.c.score))).all())
    assert [r.event_name for r in rows] == ["users.welcomed"] * 3
    assert scores == {"A2": 2, "B1": 1}


async def test_runaway_handlers_stop_with_a_clear_error(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    dispatcher = Dispatcher()
    uow = UnitOfWork(
        session_factory,
        dispatcher,
        DefaultOutboxRecorder(outbox),
        repositories={"users": UserRepository},
        max_event_rounds=5,
    )

    async def echo(event: DomainEvent) -> None:
        assert event.aggregate_id is not None
        user = (await uow.users.get(event.aggregate_id)).value
        user.rename(user.name + "!")

    dispatcher.on("users.renamed", echo)
    with (  # noqa: PT012
        request_scope(tenant_id=uuid7()),
        pytest.raises(DispatchLoopError, match="after 5 rounds"),
    ):
        async with uow.begin() as tx:
            user = User.register("a@x.org", "Ann")
            await tx.users.add(user)
            user.rename("Anna")
    assert len(dispatcher.seen) == 5
    assert await counts(engine) == (0, 0)


async def test_integration_events_without_an_outbox_fail_loudly(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    uow = UnitOfWork(session_factory, repositories={"users": UserRepository})
    with request_scope(tenant_id=uuid7()):
        with pytest.raises(ConfigurationError, match="no outbox recorder"):
            async with uow.begin() as tx:
                await tx.users.add(User.register("a@x.org", "Ann"))
        # Domain events with no dispatcher are simply not handled.
        async with uow.begin() as tx:
            user = User(email="b@x.org", name="B")
            await tx.users.add(user)
            user.rename("Bee")
    assert await counts(engine) == (1, 0)


async def test_one_shared_unit_of_work_gives_each_task_its_own_scope(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    uow = make_uow(session_factory)
    sessions: set[int] = set()
    tenant = uuid7()

    async def operation(i: int) -> UUID:
        with request_scope(tenant_id=tenant, correlation_id=(corr := uuid7())):
            async with uow.begin() as tx:
                sessions.add(id(tx.session))
                user = User.register(f"u{i}@x.org", f"U{i}")
                await tx.users.add(user)
                await asyncio.sleep(0)  # let the other operations interleave
                assert uow.session is tx.session
                assert list(tx._tracked.values()) == [user]
                if i % 4 == 0:
                    raise LookupError("this one fails")
        return corr

    results = await asyncio.gather(*(operation(i) for i in range(12)), return_exceptions=True)
    assert len(sessions) == 12
    ok = [r for r in results if isinstance(r, UUID)]
    assert len(ok) == 9
    assert all(isinstance(r, LookupError) for r in results if not isinstance(r, UUID))
    async with engine.connect() as conn:
        correlations = set((await conn.execute(select(outbox.c.correlation_id))).scalars())
    assert correlations == set(ok)
    assert await counts(engine) == (9, 9)


async def test_misuse_is_refused_clearly(session_factory: SessionFactory) -> None:
    uow = make_uow(session_factory)
    with pytest.raises(UnitOfWorkStateError, match="no unit of work is open") as no_scope:
        _ = uow.session
    assert no_scope.value.state == "none"
    with pytest.raises(AttributeError, match="registered: users"):
        async with uow.begin() as tx:
            _ = tx.orders
    with pytest.raises(UnitOfWorkStateError, match="already inside"):
        async with uow.begin(), uow.begin():
            pass
    with pytest.raises(ConfigurationError, match="cannot name a repository"):
        uow.register("session", UserRepository)
    with pytest.raises(ConfigurationError, match="not a Repository subclass"):
        uow.register("things", dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least 1"):
        UnitOfWork(session_factory, max_event_rounds=0)

    # A child task of the block shares its scope (the session serialises the statements).
    seen: dict[str, Any] = {}

    async def child() -> None:
        seen["session"] = uow.session

    async with uow.begin() as tx:
        await asyncio.create_task(child())
        assert seen["session"] is tx.session


async def test_repository_built_by_hand_reports_to_the_unit_of_work(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    dispatcher = Dispatcher()
    uow = make_uow(session_factory, dispatcher)
    with request_scope(tenant_id=uuid7()):
        async with uow:
            users = UserRepository(uow.session, uow)  # the reference's constructor, plus the uow
            user = User(email="a@x.org", name="A")
            await users.add(user)
            user.rename("Ann")
            await uow.commit()
        async with uow:
            page = await UserRepository(uow.session, uow).list()
            page.items[0].rename("Anna")  # loaded aggregates are tracked too
            await uow.commit()
    assert [getattr(e, "name", None) for e in dispatcher.seen] == ["Ann", "Anna"]
