"""Repository.list_cursor: keyset pages with the repository's filters and scoping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    CursorCodec,
    CursorError,
    CursorPagination,
    Filter,
    InvalidQueryError,
    OffsetPagination,
    Sort,
    TenantScopeError,
    request_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import User, UserRepository, create_tables

TENANT_A, TENANT_B = uuid7(), uuid7()


class SignedUsers(UserRepository):
    cursor_codec = CursorCodec(secret="repo-secret")


@pytest.fixture
async def session(
    engine: AsyncEngine, session_factory: SessionFactory
) -> AsyncIterator[AsyncSession]:
    await create_tables(engine)
    async with session_factory() as s:
        for tenant, count in ((TENANT_A, 23), (TENANT_B, 5)):
            with request_scope(tenant_id=tenant):
                users = [
                    User(
                        email=f"u{i:02}@{tenant.hex[:6]}",
                        name=f"n{i % 4}",
                        score=None if i % 3 == 0 else i % 5,
                    )
                    for i in range(count)
                ]
                assert (await SignedUsers(s).add_many(users)).is_success
        await s.commit()
        with request_scope(tenant_id=TENANT_A):
            doomed = users_of_a = (
                await SignedUsers(s).list(OffsetPagination(page_size=1, sort=[Sort("email")]))
            ).items[0]
            assert (await SignedUsers(s).soft_delete(doomed.id)).is_success
            del users_of_a
        await s.commit()
        yield s


async def _walk(repo: UserRepository, pagination: CursorPagination, **kw: Any) -> list[User]:
    items: list[User] = []
    page = await repo.list_cursor(pagination, **kw)
    items += page.items
    while page.next_cursor is not None:
        page = await repo.list_cursor(replace(pagination, cursor=page.next_cursor), **kw)
        items += page.items
        assert len(items) <= 100, "the walk does not advance"
    back = list(page.items)
    while page.previous_cursor is not None:
        page = await repo.list_cursor(replace(pagination, cursor=page.previous_cursor), **kw)
        back[:0] = page.items
        assert len(back) <= 100, "the walk does not advance"
    assert [u.id for u in back] == [u.id for u in items]
    return items


async def test_pages_match_the_offset_listing_scoped_to_the_tenant(session: AsyncSession) -> None:
    repo = SignedUsers(session)
    sort = [Sort("score", "desc"), Sort("name", "asc")]
    with request_scope(tenant_id=TENANT_A):
        walked = await _walk(repo, CursorPagination(limit=4, sort=sort))
        listed = (await repo.list(OffsetPagination(page_size=100, sort=sort))).items
        assert [u.id for u in walked] == [u.id for u in listed]
        assert len(walked) == 22  # 23 of tenant A, one soft-deleted; none of tenant B
        assert {u.tenant_id for u in walked} == {TENANT_A}
        with_deleted = await _walk(repo, CursorPagination(limit=5, sort=sort), include_deleted=True)
        assert len(with_deleted) == 23
        filtered = await _walk(
            repo, CursorPagination(limit=2, sort=sort, filters=[Filter("name", "eq", "n1")])
        )
        assert filtered
        assert {u.name for u in filtered} == {"n1"}


async def test_cursor_bound_to_filters_scope_and_tenant(session: AsyncSession) -> None:
    repo = SignedUsers(session)
    base = CursorPagination(limit=3, sort=[Sort("email")], filters=[Filter("name", "eq", "n1")])
    with request_scope(tenant_id=TENANT_A):
        token = (await repo.list_cursor(base)).next_cursor
        assert token is not None
        for pagination, kw in [
            (replace(base, cursor=token, filters=[Filter("name", "eq", "n2")]), {}),
            (replace(base, cursor=token, sort=[Sort("email", "desc")]), {}),
            (replace(base, cursor=token), {"include_deleted": True}),
        ]:
            with pytest.raises(CursorError) as caught:
                await repo.list_cursor(pagination, **kw)
            assert caught.value.reason == "wrong_sort"
    with request_scope(tenant_id=TENANT_B), pytest.raises(CursorError) as caught:
        await repo.list_cursor(replace(base, cursor=token))
    assert caught.value.reason == "wrong_sort"
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    unsigned = CursorCodec().encode({"email": "u00", "id": uuid7()})
    for bad, reason in [(forged, "tampered"), (unsigned, "unsigned")]:
        with request_scope(tenant_id=TENANT_A), pytest.raises(CursorError) as caught:
            await repo.list_cursor(replace(base, cursor=bad))
        assert caught.value.reason == reason


async def test_allow_lists_and_fail_closed_tenancy(session: AsyncSession) -> None:
    repo = SignedUsers(session)
    with request_scope(tenant_id=TENANT_A), pytest.raises(InvalidQueryError):
        await repo.list_cursor(CursorPagination(sort=[Sort("is_active")]))
    with request_scope(tenant_id=TENANT_A), pytest.raises(InvalidQueryError):
        await repo.list_cursor(CursorPagination(filters=[Filter("version", "eq", 1)]))
    with pytest.raises(TenantScopeError):
        await repo.list_cursor(CursorPagination())


async def test_a_secret_kept_only_in_dotenv_signs_repository_cursors(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "QX_DB__CURSOR_SECRET",
        "QX_DB__CURSOR_PREVIOUS_SECRETS",
        "QX_DB__CURSOR_MAX_AGE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("QX_DB__CURSOR_SECRET=only-in-dotenv\n")
    repo = UserRepository(session)  # no codec of its own: the settings' codec
    with request_scope(tenant_id=TENANT_A):
        page = await repo.list_cursor(CursorPagination(limit=3, sort=[Sort("email")]))
    assert page.next_cursor is not None
    assert CursorCodec(secret="only-in-dotenv").decode(page.next_cursor).verified
    with pytest.raises(CursorError) as info:
        CursorCodec(secret="another-key").decode(page.next_cursor)
    assert info.value.reason == "tampered"
