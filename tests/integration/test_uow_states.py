"""The unit of work is a state machine: every call in every state, both forms, both dialects.

Only ``open`` (and ``committing``, for event handlers) can write. In ``committed``,
``rolled_back``, ``failed`` and ``closed`` every repository call, statement, ``commit()``,
``track()`` and event recording raises ``UnitOfWorkStateError`` naming the state, and
nothing reaches the database. Child tasks of the block share its scope safely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    ConfigurationError,
    DefaultOutboxRecorder,
    DomainEvent,
    Error,
    Repository,
    TenantScopeError,
    UnitOfWork,
    UnitOfWorkStateError,
    ValidationError,
    request_scope,
    system_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import (
    User,
    UserRegistered,
    UserRepository,
    create_tables,
    outbox,
    users_table,
)

TENANT = uuid7()


class SwitchableDispatcher:
    """Fails every domain event while ``fail`` is set (to reach the ``failed`` state)."""

    def __init__(self) -> None:
        self.fail = False
        self.during: Callable[[], Awaitable[None]] | None = None

    async def publish(self, event: DomainEvent) -> None:
        if self.during is not None:
            await self.during()
        if self.fail:
            raise RuntimeError("handler failed")


def make_uow(factory: SessionFactory, dispatcher: SwitchableDispatcher) -> UnitOfWork:
    return UnitOfWork(
        factory, dispatcher, DefaultOutboxRecorder(outbox), repositories={"users": UserRepository}
    )


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        users = (await conn.execute(select(func.count()).select_from(users_table))).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return int(users), int(rows)


async def seed(uow: UnitOfWork) -> User:
    async with uow.begin() as tx:
        user = User.register(f"{uuid7()}@x.org", "Seed")
        await tx.users.add(user)
    return user


async def _record(handle: Any, user: User) -> None:
    user.rename("Later")


async def _track(handle: Any, user: User) -> None:
    handle.track(user)


# Each call a caller can make on a scope (`tx`) or on the uow itself (`async with uow:`).
CALLS: dict[str, Callable[[Any, User], Awaitable[Any]]] = {
    "get": lambda h, u: h.users.get(u.id),
    "exists": lambda h, u: h.users.exists(u.id),
    "list": lambda h, u: h.users.list(),
    "list_cursor": lambda h, u: h.users.list_cursor(),
    "add": lambda h, u: h.users.add(User.register(f"{uuid7()}@x.org", "New")),
    "add_many": lambda h, u: h.users.add_many([User.register(f"{uuid7()}@x.org", "N")]),
    "save": lambda h, u: h.users.save(u),
    "soft_delete": lambda h, u: h.users.soft_delete(u.id),
    "hard_delete": lambda h, u: h.users.hard_delete(u.id),
    "session.execute": lambda h, u: h.session.execute(select(func.count()).select_from(outbox)),
    "commit": lambda h, u: h.commit(),
    "track": _track,
    "record_event": _record,
}
STATES = ("committed", "rolled_back", "failed", "closed")


async def _reach(handle: Any, state: str, dispatcher: SwitchableDispatcher, user: User) -> None:
    if state == "committed":
        await handle.commit()
    elif state == "rolled_back":
        await handle.rollback()
    elif state == "failed":
        user.rename("Boom")  # a domain event the failing handler receives
        dispatcher.fail = True
        with pytest.raises(RuntimeError, match="handler failed"):
            await handle.commit()
        dispatcher.fail = False


async def _refused(call: str, handle: Any, user: User, state: str) -> None:
    with pytest.raises(UnitOfWorkStateError) as refused:
        await CALLS[call](handle, user)
    assert refused.value.state == state, (call, state, refused.value)
    assert state.replace("_", " ") in refused.value.message


@pytest.mark.parametrize("form", ["begin", "uow"])
async def test_every_call_in_every_state_that_cannot_write_is_refused(
    engine: AsyncEngine, session_factory: SessionFactory, form: str
) -> None:
    await create_tables(engine)
    dispatcher = SwitchableDispatcher()
    uow = make_uow(session_factory, dispatcher)
    with request_scope(tenant_id=TENANT):
        user = await seed(uow)
        before = await counts(engine)
        for state in STATES:
            for call in CALLS:
                leaked: Any = None
                if form == "begin":
                    async with uow.begin() as tx:
                        loaded = (await tx.users.get(user.id)).value
                        await _reach(tx, state, dispatcher, loaded)
                        if state != "closed":
                            await _refused(call, tx, loaded, state)
                            assert tx.state == state
                        leaked = tx
                else:
                    async with uow:
                        loaded = (await uow.users.get(user.id)).value
                        await _reach(uow, state, dispatcher, loaded)
                        if state != "closed":
                            await _refused(call, uow, loaded, state)
                        leaked = uow.scope if state == "closed" else None
                if state == "closed":
                    assert leaked.state == "closed"
                    if call == "record_event":
                        # Released at the end of the block: an aggregate may be changed
                        # between units of work and saved by the next one, which drains it.
                        await CALLS[call](leaked, loaded)
                        assert loaded.pull_events()
                    else:
                        await _refused(call, leaked, loaded, "closed")
                assert await counts(engine) == before, (form, state, call)
        # Outside any block, the `async with uow:` handle has no scope at all.
        for call in ("get", "add", "session.execute", "commit"):
            with pytest.raises(UnitOfWorkStateError) as outside:
                await CALLS[call](uow, user)
            assert outside.value.state == "none"


async def test_rollback_is_idempotent_and_refused_after_commit(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    dispatcher = SwitchableDispatcher()
    uow = make_uow(session_factory, dispatcher)
    with request_scope(tenant_id=TENANT):
        user = await seed(uow)
        async with uow.begin() as tx:
            await tx.rollback()
            await tx.rollback()
            assert tx.state == "rolled_back"
        await tx.rollback()  # closed: nothing to undo, nothing refused
        with pytest.raises(UnitOfWorkStateError, match="committed") as after_commit:  # noqa: PT012
            async with uow.begin() as tx:
                await tx.commit()
                await tx.rollback()
        assert after_commit.value.state == "committed"
        async with uow.begin() as tx:
            loaded = (await tx.users.get(user.id)).value
            await _reach(tx, "failed", dispatcher, loaded)
            await tx.rollback()  # already rolled back by the failed commit
            assert tx.state == "failed"


async def test_a_write_after_commit_is_refused_not_silently_dropped(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    # The defect: a2 and its outbox event were never written, and nothing was raised.
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    with (  # noqa: PT012
        request_scope(tenant_id=TENANT),
        pytest.raises(UnitOfWorkStateError, match="committed") as refused,
    ):
        async with uow.begin() as tx:
            await tx.users.add(User.register("a1@x.org", "A1"))
            await tx.commit()
            await tx.users.add(User.register("a2@x.org", "A2"))
    assert refused.value.code == "uow.committed"
    assert await counts(engine) == (1, 1)


@pytest.mark.parametrize("form", ["begin", "uow"])
async def test_open_and_committing_states_can_write(
    engine: AsyncEngine, session_factory: SessionFactory, form: str
) -> None:
    await create_tables(engine)
    dispatcher = SwitchableDispatcher()
    uow = make_uow(session_factory, dispatcher)
    with request_scope(tenant_id=TENANT):
        user = await seed(uow)
        handle_of: dict[str, Any] = {}

        async def handler_writes() -> None:
            # An event handler runs while the scope is committing: it may still write.
            dispatcher.during = None
            handle = handle_of["h"]
            assert (handle.scope if form == "uow" else handle).state == "committing"
            await handle.users.add(User.register("from-handler@x.org", "H"))
            with pytest.raises(UnitOfWorkStateError, match="committing"):
                await handle.commit()

        if form == "begin":
            async with uow.begin() as tx:
                handle_of["h"] = tx
                loaded = (await tx.users.get(user.id)).value
                for call in ("get", "exists", "list", "list_cursor", "add", "add_many"):
                    await CALLS[call](tx, loaded)
                await CALLS["save"](tx, loaded)
                await CALLS["session.execute"](tx, loaded)
                loaded.rename("Now")
                dispatcher.during = handler_writes
                assert tx.state == "open"
        else:
            async with uow:
                handle_of["h"] = uow
                loaded = (await uow.users.get(user.id)).value
                for call in ("get", "exists", "list", "list_cursor", "add", "add_many"):
                    await CALLS[call](uow, loaded)
                await CALLS["save"](uow, loaded)
                loaded.rename("Now")
                dispatcher.during = handler_writes
                await uow.commit()
    # seed + add + add_many + the handler's add; every registration wrote its outbox row
    assert await counts(engine) == (4, 4)


async def test_child_tasks_share_the_scope_safely(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    # The defect: asyncio.gather over tx.<repo> failed with SQLAlchemy's InvalidRequestError.
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    with request_scope(tenant_id=TENANT):
        async with uow.begin() as tx:
            added = await asyncio.gather(
                *(tx.users.add(User.register(f"u{i}@x.org", f"U{i}")) for i in range(8))
            )
            found = await asyncio.gather(*(tx.users.get(r.value.id) for r in added))
            assert all(r.is_success for r in found)
            assert sum(await asyncio.gather(*(tx.users.exists(r.value.id) for r in added))) == 8
        async with uow:
            pages = await asyncio.gather(*(uow.users.list() for _ in range(4)))
            assert {len(p.items) for p in pages} == {8}
    assert await counts(engine) == (8, 8)


async def test_a_child_task_that_outlives_the_block_is_refused(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    release = asyncio.Event()

    async def late(tx: Any) -> None:
        await release.wait()
        await tx.users.add(User.register("late@x.org", "Late"))

    with request_scope(tenant_id=TENANT):
        async with uow.begin() as tx:
            straggler = asyncio.create_task(late(tx))
        release.set()
        with pytest.raises(UnitOfWorkStateError) as refused:
            await straggler
    assert refused.value.state == "closed"
    assert await counts(engine) == (0, 0)


async def test_outbox_tenant_comes_from_the_context_never_the_entity(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    # The defect: under tenant A, `entity.tenant_id = B` + an event + save() stamped the
    # outbox row with B, so A's data reached B's consumers.
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    tenant_a, tenant_b = uuid7(), uuid7()
    with request_scope(tenant_id=tenant_a):
        user = await seed(uow)
        async with uow.begin() as tx:
            loaded = (await tx.users.get(user.id)).value
            loaded.tenant_id = tenant_b  # forged; the row itself is not written here
            loaded.record_event(UserRegistered(email="forged@x.org"))
        # An event that names another tenant itself is refused, and nothing is written.
        before = await counts(engine)
        with pytest.raises(TenantScopeError, match="names tenant"):  # noqa: PT012
            async with uow.begin() as tx:
                loaded = (await tx.users.get(user.id)).value
                loaded.record_event(UserRegistered(email="x@x.org", tenant_id=tenant_b))
                await tx.users.add(User.register("also@x.org", "Also"))
        assert await counts(engine) == before
    # system_scope() is the explicit opt-in to act for a named tenant.
    with system_scope():
        async with uow.begin() as tx:
            other = User.register("b@x.org", "B")
            other.tenant_id = tenant_b
            await tx.users.add(other)
    async with engine.connect() as conn:
        stamps = {
            r.payload["payload"]["email"]: r.tenant_id for r in await conn.execute(select(outbox))
        }
        row_tenant = (
            await conn.execute(select(users_table.c.tenant_id).where(users_table.c.id == user.id))
        ).scalar_one()
    assert row_tenant == tenant_a
    assert stamps["forged@x.org"] == tenant_a
    assert stamps["b@x.org"] == tenant_b
    assert {t for email, t in stamps.items() if email != "b@x.org"} == {tenant_a}
    assert "x@x.org" not in stamps and "also@x.org" not in stamps


HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([object(), User, UserRepository, dict, Repository, uuid7()]),
)


async def test_hostile_arguments_raise_only_qxdb_errors(session_factory: SessionFactory) -> None:
    uow = make_uow(session_factory, SwitchableDispatcher())
    seen: list[BaseException] = []

    def check(call: Callable[[], Any]) -> None:
        try:
            call()
        except Error as exc:
            seen.append(exc)

    @hsettings(max_examples=200, deadline=None)
    @given(
        name=HOSTILE,
        cls=HOSTILE,
        rounds=HOSTILE,
        repos=st.one_of(
            HOSTILE,
            st.dictionaries(
                st.one_of(st.none(), st.integers(), st.text(max_size=8)), HOSTILE, max_size=2
            ),
        ),
    )
    def constructors(name: Any, cls: Any, rounds: Any, repos: Any) -> None:
        check(lambda: uow.register(name, cls))
        check(lambda: UnitOfWork(session_factory, max_event_rounds=rounds))
        check(lambda: UnitOfWork(session_factory, repositories=repos))

    constructors()
    assert any(isinstance(e, ConfigurationError) for e in seen)

    @hsettings(max_examples=50, deadline=None)
    @given(thing=HOSTILE)
    def tracking(thing: Any) -> None:
        check(lambda: uow.track(thing))  # no scope: state "none"

    tracking()
    async with uow.begin() as tx:
        for thing in (None, 1, "user", User, object()):
            with pytest.raises(ValidationError, match="takes an AggregateRoot"):
                tx.track(thing)


@pytest.mark.parametrize("form", ["begin", "uow"])
async def test_the_scope_session_refuses_to_commit_roll_back_or_begin_on_its_own(
    engine: AsyncEngine, session_factory: SessionFactory, form: str
) -> None:
    """session.commit() inside a unit of work would commit the row without its outbox
    event (only tx.commit() writes it) and leave the scope "open": refused, as are
    session.rollback() and session.begin() (whose block would commit the same way)."""
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    calls: dict[str, Callable[[Any], Any]] = {
        "commit": lambda s: s.commit(),
        "rollback": lambda s: s.rollback(),
        "begin": lambda s: s.begin(),
    }
    with request_scope(tenant_id=TENANT):
        before = await counts(engine)

        async def failing_request() -> None:
            async with uow.begin() if form == "begin" else uow as handle:
                await handle.users.add(User.register(f"{uuid7()}@x.org", "Bypass"))
                for name, call in calls.items():
                    with pytest.raises(UnitOfWorkStateError) as refused:
                        await call(handle.session)
                    assert refused.value.code == "uow.session_transaction"
                    assert refused.value.state == "open"
                    assert f"session.{name}()" in refused.value.message
                raise RuntimeError("request fails afterwards")

        with pytest.raises(RuntimeError, match="request fails"):
            await failing_request()
        assert await counts(engine) == before  # nothing committed behind the outbox's back

        # The scope stays consistent after a refusal: its own commit writes row and event.
        async with uow.begin() as tx:
            user = User.register(f"{uuid7()}@x.org", "Kept")
            await tx.users.add(user)
            with pytest.raises(UnitOfWorkStateError):
                await tx.session.commit()
            assert tx.state == "open"
        assert await counts(engine) == (before[0] + 1, before[1] + 1)


async def test_a_savepoint_works_while_open_and_is_refused_once_committed(
    engine: AsyncEngine, session_factory: SessionFactory
) -> None:
    # Savepoints cannot commit the unit of work's transaction (add_many and save use one).
    await create_tables(engine)
    uow = make_uow(session_factory, SwitchableDispatcher())
    with request_scope(tenant_id=TENANT):
        before = await counts(engine)
        async with uow.begin() as tx:
            async with tx.session.begin_nested():
                await tx.users.add(User.register(f"{uuid7()}@x.org", "Nested"))
            await tx.commit()
            with pytest.raises(UnitOfWorkStateError) as refused:
                tx.session.begin_nested()
            assert refused.value.state == "committed"
        assert await counts(engine) == (before[0] + 1, before[1] + 1)
