"""Tenant isolation: through tenant A's context nothing of tenant B is visible or writable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    Filter,
    NotFoundError,
    OffsetPagination,
    RequestContext,
    TenantScopeError,
    ValidationError,
    request_scope,
    reset_context,
    set_context,
    system_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import User, UserRepository, create_tables, users_table

A = uuid7()
B = uuid7()


@pytest.fixture
async def session(
    engine: AsyncEngine, session_factory: SessionFactory
) -> AsyncIterator[AsyncSession]:
    await create_tables(engine)
    async with session_factory() as s:
        yield s


async def _rows(session: AsyncSession) -> dict[str, tuple[object, ...]]:
    rows = (await session.execute(select(users_table))).all()
    return {r.email: (r.tenant_id, r.name, r.version, r.deleted_at) for r in rows}


async def test_tenant_a_cannot_see_change_or_delete_tenant_b_rows(session: AsyncSession) -> None:
    repo = UserRepository(session)
    with request_scope(tenant_id=A):
        alice = User(email="alice@a.org", name="Alice")
        await repo.add(alice)
    with request_scope(tenant_id=B):
        bob = User(email="bob@b.org", name="Bob")
        await repo.add(bob)
    await session.commit()
    before = await _rows(session)
    assert before["bob@b.org"][0] == B

    with request_scope(tenant_id=A):
        missing = await repo.get(uuid7())
        through_a = await repo.get(bob.id)
        # Another tenant's row looks exactly like a missing one.
        assert isinstance(through_a.error, NotFoundError)
        assert through_a.error.code == missing.error.code  # type: ignore[union-attr]
        assert through_a.error.message == f"User {bob.id} not found"  # type: ignore[union-attr]
        assert isinstance((await repo.get(bob.id, include_deleted=True)).error, NotFoundError)
        assert not await repo.exists(bob.id)
        page = await repo.list(OffsetPagination(include_total=True))
        assert [u.email for u in page.items] == ["alice@a.org"]
        assert page.total == 1
        assert await repo.count() == 1
        search = OffsetPagination(filters=[Filter("email", "contains", "bob")])
        assert (await repo.list(search, include_deleted=True)).items == []

        bob.name = "Hacked"
        # B's entity itself is refused, as add refuses it; by id, B's row looks missing.
        with pytest.raises(TenantScopeError, match="another tenant"):
            await repo.save(bob)
        assert isinstance((await repo.soft_delete(bob.id)).error, NotFoundError)
        assert isinstance((await repo.restore(bob.id)).error, NotFoundError)
        assert isinstance((await repo.hard_delete(bob.id)).error, NotFoundError)
        intruder = User(email="x@b.org", name="Intruder", tenant_id=B)
        with pytest.raises(TenantScopeError, match="another tenant"):
            await repo.add(intruder)
        with pytest.raises(TenantScopeError):
            await repo.add_many([User(email="y@a.org", name="Y"), intruder])
        # A's own row: saving it cannot move it to tenant B (refused), nor change it.
        alice.name = "Alice A."
        alice.tenant_id = B
        with pytest.raises(TenantScopeError, match="another tenant"):
            await repo.save(alice)
        alice.tenant_id = A
        assert (await repo.save(alice)).is_success
    await session.commit()

    after = await _rows(session)
    assert after["bob@b.org"] == before["bob@b.org"]
    assert after["alice@a.org"][:3] == (A, "Alice A.", 2)
    assert set(after) == {"alice@a.org", "bob@b.org"}


async def test_no_tenant_in_context_fails_closed_on_every_call(session: AsyncSession) -> None:
    repo = UserRepository(session)
    with request_scope(tenant_id=A):
        user = User(email="alice@a.org", name="Alice")
        await repo.add(user)
    await session.commit()

    with request_scope(user_id=uuid7()):
        calls = [
            repo.get(user.id),
            repo.exists(user.id),
            repo.list(OffsetPagination()),
            repo.add(User(email="n@x.org", name="N")),
            repo.add_many([User(email="m@x.org", name="M")]),
            repo.save(user),
            repo.soft_delete(user.id),
            repo.restore(user.id),
            repo.hard_delete(user.id),
        ]
        for call in calls:
            with pytest.raises(TenantScopeError, match="system_scope"):
                await call
    await session.commit()
    assert set(await _rows(session)) == {"alice@a.org"}


async def test_system_scope_is_explicit_and_sees_every_tenant(session: AsyncSession) -> None:
    repo = UserRepository(session)
    with system_scope():
        await repo.add_many(
            [
                User(email="alice@a.org", name="Alice", tenant_id=A),
                User(email="bob@b.org", name="Bob", tenant_id=B),
            ]
        )
        page = await repo.list(OffsetPagination(sort=[]))
        assert sorted(u.email for u in page.items) == ["alice@a.org", "bob@b.org"]
        bob = next(u for u in page.items if u.tenant_id == B)
        bob.name = "Robert"
        assert (await repo.save(bob)).is_success
        assert (await repo.soft_delete(bob.id)).is_success
    with request_scope(tenant_id=B):
        assert (await repo.get(bob.id, include_deleted=True)).value.name == "Robert"
    with system_scope(), pytest.raises(TenantScopeError, match="must name its tenant_id"):
        await repo.add(User(email="nobody@x.org", name="No tenant"))
    # Leaving the system scope restores fail-closed behaviour.
    with pytest.raises(TenantScopeError):
        await repo.list(OffsetPagination())


@pytest.mark.parametrize("bad", ["not-a-uuid", "", 5, 0, b"\x00" * 16, 1.5])
@pytest.mark.parametrize("field", ["tenant_id", "user_id", "causation_id", "correlation_id"])
async def test_a_request_context_id_that_is_no_uuid_is_refused_before_any_statement(
    session: AsyncSession, field: str, bad: object
) -> None:
    # Formerly it reached the driver: a DBAPIError that aborts the PostgreSQL transaction.
    with (
        pytest.raises(ValidationError, match=f"request context {field}: expected a UUID"),
        request_scope(**{field: bad}),
    ):
        pass
    with pytest.raises(ValidationError, match=field):
        RequestContext(**{field: bad})
    # Nothing reached the database: the same session still works, in tenant A.
    with request_scope(tenant_id=A):
        assert (await UserRepository(session).list()).items == []


async def test_a_uuid_as_text_in_the_context_works_alike_on_both_dialects(
    session: AsyncSession,
) -> None:
    # Formerly SQLite could not bind the text to its UUID column (StatementError).
    repo = UserRepository(session)
    actor = uuid7()
    with request_scope(tenant_id=str(A).upper(), user_id=str(actor)) as ctx:
        assert ctx.tenant_id == A and ctx.user_id == actor
        user = User(email="text@a.org", name="Text")
        assert (await repo.add(user)).is_success
        user.name = "Text 2"
        assert (await repo.save(user)).is_success
        listed = (await repo.list()).items
    assert [(u.email, u.tenant_id, u.created_by, u.updated_by) for u in listed] == [
        ("text@a.org", A, actor, actor)
    ]
    with request_scope(tenant_id=B):
        assert (await repo.list()).items == []
    with system_scope(user_id=str(actor)) as ctx:  # type: ignore[arg-type]
        assert ctx.user_id == actor
    token = set_context(RequestContext(tenant_id=str(A)))  # type: ignore[arg-type]
    try:
        assert [u.email for u in (await repo.list()).items] == ["text@a.org"]
    finally:
        reset_context(token)
