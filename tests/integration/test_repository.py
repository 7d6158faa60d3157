"""Repository CRUD, optimistic concurrency, listing, filters and sort on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    ConflictError,
    Filter,
    InvalidQueryError,
    NotFoundError,
    OffsetPagination,
    RequestContext,
    Sort,
    request_scope,
    uuid7,
)
from qxdb.engine import SessionFactory
from tests.integration.repo_models import (
    Tag,
    TagRepository,
    User,
    UserRepository,
    create_tables,
    users_table,
)

TENANT = uuid7()
ACTOR = uuid7()


@pytest.fixture
def tenant() -> Iterator[RequestContext]:
    with request_scope(tenant_id=TENANT, user_id=ACTOR) as ctx:
        yield ctx


@pytest.fixture
async def session(
    engine: AsyncEngine, session_factory: SessionFactory, tenant: RequestContext
) -> AsyncIterator[AsyncSession]:
    await create_tables(engine)
    async with session_factory() as s:
        yield s


async def _seed(repo: UserRepository, rows: list[dict[str, Any]]) -> list[User]:
    users = [User(**row) for row in rows]
    assert (await repo.add_many(users)).is_success
    return users


async def test_add_get_exists_and_audit_fields(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user = User(email="a@example.com", name="Ann")
    assert (await repo.add(user)).value is user
    assert user.tenant_id == TENANT
    assert user.created_by == ACTOR
    assert user.created_at is not None
    await session.commit()

    loaded = (await repo.get(user.id)).value
    assert loaded is not user
    assert (loaded.email, loaded.name, loaded.version, loaded.tenant_id) == (
        "a@example.com",
        "Ann",
        1,
        TENANT,
    )
    assert loaded.created_at == user.created_at
    assert await repo.exists(user.id)
    missing = await repo.get(uuid7())
    assert isinstance(missing.error, NotFoundError)
    assert missing.error.code == "user.not_found"
    assert not await repo.exists(uuid7())


async def test_save_bumps_version_and_never_rewrites_identity(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user = User(email="a@example.com", name="Ann")
    await repo.add(user)
    await session.commit()
    created_at = user.created_at
    assert created_at is not None

    loaded = (await repo.get(user.id)).value
    loaded.name = "Anne"
    # Attempts to rewrite the row's identity and history are ignored by save (moving it to
    # another tenant is refused outright: tests/integration/test_tenancy.py).
    loaded.created_at = created_at - timedelta(days=365)
    loaded.created_by = uuid7()
    with request_scope(tenant_id=TENANT, user_id=(editor := uuid7())):
        saved = (await repo.save(loaded)).value
    assert saved.version == 2
    assert saved.updated_by == editor
    await session.commit()

    row = (await session.execute(select(users_table).where(users_table.c.id == user.id))).one()
    assert row.name == "Anne"
    assert row.version == 2
    assert row.tenant_id == TENANT
    assert row.created_at == created_at
    assert row.created_by == ACTOR
    assert row.updated_by == editor
    assert row.updated_at is not None


async def test_save_with_stale_version_is_a_conflict(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user = User(email="a@example.com", name="Ann")
    await repo.add(user)
    first = (await repo.get(user.id)).value
    second = (await repo.get(user.id)).value
    first.name = "First"
    second.name = "Second"
    assert (await repo.save(first)).is_success
    result = await repo.save(second)
    assert isinstance(result.error, ConflictError)
    assert result.error.details == {"id": str(user.id), "version": 1}
    assert second.version == 1
    assert (await repo.get(user.id)).value.name == "First"
    ghost = User(email="g@example.com", name="Ghost")
    assert isinstance((await repo.save(ghost)).error, NotFoundError)


async def test_soft_delete_restore_and_hard_delete(session: AsyncSession) -> None:
    repo = UserRepository(session)
    user = User(email="a@example.com", name="Ann")
    await repo.add(user)
    assert (await repo.soft_delete(user.id)).is_success
    assert isinstance((await repo.get(user.id)).error, NotFoundError)
    assert not await repo.exists(user.id)
    deleted = (await repo.get(user.id, include_deleted=True)).value
    assert deleted.is_deleted
    assert deleted.deleted_by == ACTOR
    assert deleted.version == 2
    assert deleted.updated_at == deleted.deleted_at
    assert isinstance((await repo.soft_delete(user.id)).error, NotFoundError)
    assert (await repo.list(OffsetPagination())).items == []
    assert len((await repo.list(OffsetPagination(), include_deleted=True)).items) == 1

    stale = await repo.restore(user.id, expected_version=1)
    assert isinstance(stale.error, ConflictError)
    assert (await repo.restore(user.id, expected_version=2)).is_success
    restored = (await repo.get(user.id)).value
    assert (restored.deleted_at, restored.deleted_by, restored.version) == (None, None, 3)
    assert isinstance((await repo.restore(user.id)).error, NotFoundError)

    assert (await repo.hard_delete(user.id)).is_success
    assert not await repo.exists(user.id, include_deleted=True)
    assert isinstance((await repo.hard_delete(user.id)).error, NotFoundError)


async def test_list_pages_with_and_without_total(session: AsyncSession) -> None:
    repo = UserRepository(session)
    await _seed(repo, [{"email": f"u{i:02}@x.org", "name": f"U{i:02}"} for i in range(7)])
    page = await repo.list(
        OffsetPagination(page=2, page_size=3, sort=[Sort("email")], include_total=True)
    )
    assert [u.email for u in page.items] == ["u03@x.org", "u04@x.org", "u05@x.org"]
    assert (page.total, page.pages, page.has_next) == (7, 3, True)
    # No COUNT unless asked: the default page has no total.
    last = await repo.list(OffsetPagination(page=3, page_size=3, sort=[Sort("email")]))
    assert [u.email for u in last.items] == ["u06@x.org"]
    assert (last.total, last.has_next) == (None, False)


async def test_sort_places_nulls_explicitly_and_ties_break_on_id(session: AsyncSession) -> None:
    repo = UserRepository(session)
    users = await _seed(
        repo,
        [
            {"email": "a@x.org", "name": "same", "score": 2},
            {"email": "b@x.org", "name": "same", "score": None},
            {"email": "c@x.org", "name": "same", "score": 1},
            {"email": "d@x.org", "name": "same", "score": None},
        ],
    )
    a, b, c, d = (u.id for u in users)

    async def order(*sort: Sort) -> list[UUID]:
        return [u.id for u in (await repo.list(OffsetPagination(sort=sort))).items]

    # Same order on both dialects: NULLs last ascending, first descending (PostgreSQL's
    # default), and the id tiebreaker follows the last key's direction.
    assert await order(Sort("score")) == [c, a, b, d]
    assert await order(Sort("score", "desc")) == [d, b, a, c]
    assert await order(Sort("score", "asc", "first")) == [b, d, c, a]
    assert await order(Sort("name", "desc")) == [d, c, b, a]
    assert await order() == [a, b, c, d]
    assert await order(Sort("id", "desc"), Sort("email")) == [d, c, b, a]


FILTER_CASES: list[tuple[Filter, list[str]]] = [
    (Filter("email", "eq", "b@x.org"), ["b"]),
    (Filter("email", "neq", "b@x.org"), ["a", "c", "d"]),
    (Filter("email", "in", ["a@x.org", "c@x.org", "zz"]), ["a", "c"]),
    (Filter("email", "not_in", ("a@x.org", "c@x.org")), ["b", "d"]),
    (Filter("email", "in", []), []),
    (Filter("score", "gt", 2), ["c"]),
    (Filter("score", "gte", 2), ["b", "c"]),
    (Filter("score", "lt", 2), ["a"]),
    (Filter("score", "lte", 2), ["a", "b"]),
    (Filter("name", "contains", "LI"), ["a", "c"]),
    (Filter("name", "starts_with", "ali"), ["a"]),
    (Filter("name", "ends_with", "CE"), ["a"]),
    (Filter("score", "is_null"), ["d"]),
    (Filter("score", "is_not_null"), ["a", "b", "c"]),
    (Filter("is_active", "eq", False), ["d"]),
]


async def test_every_filter_operator(session: AsyncSession) -> None:
    repo = UserRepository(session)
    await _seed(
        repo,
        [
            {"email": "a@x.org", "name": "Alice", "score": 1},
            {"email": "b@x.org", "name": "Bob", "score": 2},
            {"email": "c@x.org", "name": "Charlie", "score": 3},
            {"email": "d@x.org", "name": "Dan", "score": None, "is_active": False},
        ],
    )
    for flt, expected in FILTER_CASES:
        page = await repo.list(
            OffsetPagination(filters=[flt], sort=[Sort("email")], include_total=True)
        )
        assert [u.email[0] for u in page.items] == expected, flt
        assert page.total == len(expected)
        assert await repo.count([flt]) == len(expected)


async def test_like_metacharacters_match_literally(session: AsyncSession) -> None:
    repo = UserRepository(session)
    names = ["100% sure", "100 percent", "a_b", "axb", "back\\slash", "backslash", "plain"]
    await _seed(repo, [{"email": f"{i}@x.org", "name": n} for i, n in enumerate(names)])

    async def names_for(op: Any, value: str) -> list[str]:
        page = await repo.list(OffsetPagination(filters=[Filter("name", op, value)]))
        return sorted(u.name for u in page.items)

    assert await names_for("contains", "%") == ["100% sure"]
    assert await names_for("contains", "0%") == ["100% sure"]
    assert await names_for("contains", "_") == ["a_b"]
    assert await names_for("starts_with", "a_") == ["a_b"]
    assert await names_for("contains", "\\") == ["back\\slash"]
    assert await names_for("ends_with", "k\\slash") == ["back\\slash"]
    assert await names_for("contains", "%%") == []
    assert await names_for("contains", "") == sorted(names)


INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE users; --",
    '" OR 1=1 --',
    "a') UNION SELECT * FROM users --",
    "\\'; SELECT pg_sleep(1); --",
]


async def test_injection_strings_are_plain_values(session: AsyncSession) -> None:
    repo = UserRepository(session)
    await _seed(repo, [{"email": "a@x.org", "name": "Ann"}])
    await _seed(repo, [{"email": p, "name": p} for p in INJECTIONS])
    for payload in INJECTIONS:
        for op in ("eq", "contains", "starts_with", "ends_with"):
            page = await repo.list(OffsetPagination(filters=[Filter("email", op, payload)]))
            assert [u.email for u in page.items] == [payload], (op, payload)
        page = await repo.list(OffsetPagination(filters=[Filter("email", "in", [payload, "nope"])]))
        assert [u.email for u in page.items] == [payload]
    count = (await session.execute(select(func.count()).select_from(users_table))).scalar_one()
    assert count == 1 + len(INJECTIONS)


BAD_QUERIES: list[tuple[OffsetPagination, str]] = [
    (OffsetPagination(filters=[Filter("password", "eq", "x")]), "not filterable"),
    (OffsetPagination(filters=[Filter("version", "eq", 1)]), "allowed: created_at, email"),
    (OffsetPagination(sort=[Sort("tenant_id")]), "not sortable"),
    (OffsetPagination(sort=[Sort("is_active")]), "allowed: created_at, email, id"),
    (OffsetPagination(sort=[Sort("email"), Sort("email", "desc")]), "twice"),
    (OffsetPagination(filters=[Filter("email", "in", ["a", None])]), "is_null"),
    (OffsetPagination(filters=[Filter("score", "gt", None)]), "needs a value"),
    (OffsetPagination(filters=[Filter("email", "eq", None)]), "is_null"),
    (OffsetPagination(filters=[Filter("email", "eq", ["a"])]), "use in"),
    (OffsetPagination(filters=[Filter("score", "lte", {"a": 1})]), "single value"),
    (OffsetPagination(filters=[Filter("email", "contains", 5)]), "expected a string"),
    (OffsetPagination(filters=[Filter("score", "contains", "1")]), "text column"),
    (OffsetPagination(filters=[Filter("score", "is_null", 3)]), "takes no value"),
]


def test_in_needs_a_collection_at_construction() -> None:
    for value in ("a@x.org", 5, None):
        with pytest.raises(InvalidQueryError, match="needs a list"):
            Filter("email", "in", value)


async def test_bad_queries_raise_clear_value_errors(session: AsyncSession) -> None:
    repo = UserRepository(session)
    await _seed(repo, [{"email": "a@x.org", "name": "Ann"}])
    for pagination, message in BAD_QUERIES:
        with pytest.raises(InvalidQueryError, match=message) as info:
            await repo.list(pagination)
        assert isinstance(info.value, ValueError)
    # Nothing was left half-done: the session is still usable.
    assert len((await repo.list(OffsetPagination())).items) == 1


async def test_global_repository_needs_no_tenant(session: AsyncSession) -> None:
    with request_scope():
        repo = TagRepository(session)
        tag = Tag(label="red")
        await repo.add(tag)
        assert (await repo.get(tag.id)).value.label == "red"
        page = await repo.list(OffsetPagination(filters=[Filter("label", "starts_with", "r")]))
        assert [t.label for t in page.items] == ["red"]


async def test_subclass_can_override_the_row_mapping(session: AsyncSession) -> None:
    class ShoutingRepository(UserRepository):
        def _row_to_entity(self, row: Any) -> User:
            user = super()._row_to_entity(row)
            user.name = user.name.upper()
            return user

        def _entity_to_dict(self, entity: User) -> dict[str, Any]:
            values = super()._entity_to_dict(entity)
            values["email"] = values["email"].lower()
            return values

    repo = ShoutingRepository(session)
    user = User(email="MiXeD@X.org", name="quiet")
    await repo.add(user)
    loaded = (await repo.get(user.id)).value
    assert (loaded.email, loaded.name) == ("mixed@x.org", "QUIET")
