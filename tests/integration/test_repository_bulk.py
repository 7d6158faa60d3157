"""``Repository.upsert_many`` and ``Repository.stream`` on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import Column, Integer, String, Table, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from qxdb import (
    AggregateRoot,
    ConflictError,
    Filter,
    InvalidQueryError,
    Repository,
    Sort,
    TenantScopeError,
    ValidationError,
    include_outbox_table,
    make_metadata,
    repository_bulk,
    request_scope,
    standard_audit_columns,
    system_scope,
    uuid7,
    uuid_column,
)
from qxdb.engine import SessionFactory
from qxdb.outbox.recorder import DefaultOutboxRecorder
from qxdb.repository_bulk import chunk_rows
from qxdb.uow import UnitOfWork
from tests.integration.repo_models import UserRegistered

metadata = make_metadata()
items_table = Table(
    "bulk_items",
    metadata,
    uuid_column("id", primary_key=True),
    Column("sku", String(40), nullable=False),
    Column("name", String(100), nullable=False),
    Column("qty", Integer, nullable=True),
    *standard_audit_columns(),
    UniqueConstraint("sku", name="uq_bulk_items_sku"),
)
outbox_table = include_outbox_table(metadata)
pairs_table = Table(
    "bulk_pairs",
    metadata,
    uuid_column("id", primary_key=True),
    Column("region", String(10), nullable=False),
    Column("code", Integer, nullable=False),
    Column("label", String(40), nullable=False),
    *standard_audit_columns(),
    UniqueConstraint("region", "code", name="uq_bulk_pairs_region_code"),
)

A, B, ACTOR = uuid7(), uuid7(), uuid7()


@dataclass(kw_only=True, eq=False)
class Item(AggregateRoot):
    sku: str
    name: str
    qty: int | None = None


class ItemRepository(Repository[Item]):
    entity_cls = Item
    table = items_table
    filterable_fields = {"sku", "qty", "name"}
    sortable_fields = {"sku", "qty", "name"}


@pytest.fixture
async def session(
    engine: AsyncEngine, session_factory: SessionFactory
) -> AsyncIterator[AsyncSession]:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with session_factory() as s:
        yield s


@dataclass(kw_only=True, eq=False)
class Pair(AggregateRoot):
    region: str
    code: int
    label: str


class PairRepository(Repository[Pair]):
    entity_cls = Pair
    table = pairs_table


async def test_upsert_on_a_composite_unique_key(session: AsyncSession) -> None:
    repo = PairRepository(session)
    with request_scope(tenant_id=A):
        first = [Pair(region=r, code=c, label="v1") for r in ("eu", "us") for c in (1, 2)]
        assert (await repo.upsert_many(first, on=("region", "code"))).is_success
        again = [Pair(region="eu", code=2, label="v2"), Pair(region="us", code=3, label="v1")]
        assert (await repo.upsert_many(again, on=("code", "region"))).is_success
        assert again[0].id == first[1].id and again[0].version == 2
        with pytest.raises(InvalidQueryError, match="same"):
            await repo.upsert_many(
                [Pair(region="eu", code=1, label="a"), Pair(region="eu", code=1, label="b")],
                on=("region", "code"),
            )
        with pytest.raises(InvalidQueryError, match="primary key or the columns"):
            await repo.upsert_many(first, on=("region",))
    rows = (
        await session.execute(select(pairs_table.c.region, pairs_table.c.code, pairs_table.c.label))
    ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("eu", 1, "v1"),
        ("eu", 2, "v2"),
        ("us", 1, "v1"),
        ("us", 2, "v1"),
        ("us", 3, "v1"),
    ]


async def _stored(session: AsyncSession) -> dict[str, tuple[object, ...]]:
    rows = (await session.execute(select(items_table))).all()
    return {r.sku: (r.tenant_id, r.name, r.qty, r.version, r.id) for r in rows}


async def test_upsert_inserts_then_updates_with_version_and_audit(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with request_scope(tenant_id=A, user_id=ACTOR):
        first = [Item(sku=f"s{i}", name=f"n{i}", qty=i) for i in range(3)]
        result = await repo.upsert_many(first, on=("sku",))
        assert result.is_success
        assert all(e.version == 1 and e.tenant_id == A and e.created_by == ACTOR for e in first)
        assert all(e.updated_at is None for e in first)
        # New objects with other ids, same skus: the stored rows are updated, keep their
        # ids and creation audit, and the entities get the stored state back.
        again = [Item(sku=f"s{i}", name=f"renamed{i}", qty=10 + i) for i in range(2)]
        again.append(Item(sku="s9", name="new"))
        assert (await repo.upsert_many(again, on=("sku",))).is_success
    await session.commit()
    stored = await _stored(session)
    assert stored["s0"][1:4] == ("renamed0", 10, 2)
    assert stored["s2"][1:4] == ("n2", 2, 1)
    assert stored["s9"][3] == 1
    assert again[0].id == first[0].id and again[0].version == 2
    assert again[0].created_at == first[0].created_at
    assert again[0].updated_by == ACTOR and again[0].updated_at is not None
    assert again[2].version == 1


async def test_upsert_update_limits_the_columns_written(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with request_scope(tenant_id=A):
        await repo.upsert_many([Item(sku="k", name="old", qty=1)], on=("sku",))
        await repo.upsert_many([Item(sku="k", name="new", qty=2)], on=("sku",), update=["qty"])
    assert (await _stored(session))["k"][1:3] == ("old", 2)


async def test_upsert_refuses_bad_arguments_before_sql(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with request_scope(tenant_id=A):
        with pytest.raises(InvalidQueryError, match="primary key or the columns of a unique"):
            await repo.upsert_many([Item(sku="a", name="a")], on=("name",))
        with pytest.raises(InvalidQueryError, match="not columns"):
            await repo.upsert_many([Item(sku="a", name="a")], on=("nope",))
        with pytest.raises(InvalidQueryError, match="non-empty tuple"):
            await repo.upsert_many([Item(sku="a", name="a")], on="sku")
        with pytest.raises(InvalidQueryError, match="update= names"):
            await repo.upsert_many([Item(sku="a", name="a")], on=("sku",), update=["tenant_id"])
        with pytest.raises(InvalidQueryError, match="same"):
            await repo.upsert_many([Item(sku="a", name="a"), Item(sku="a", name="b")], on=("sku",))
        with pytest.raises(ValidationError, match="over the column's 40"):
            await repo.upsert_many([Item(sku="a" * 41, name="a")], on=("sku",))
    # No tenant in the context: refused as every tenanted write is.
    with pytest.raises(TenantScopeError):
        await repo.upsert_many([Item(sku="a", name="a")], on=("sku",))
    assert await _stored(session) == {}


async def test_upsert_checks_every_value_column_by_column(session: AsyncSession) -> None:
    """Values are checked once per distinct object: a bad value shared by many rows, or
    one bad row after many good ones, is still refused, naming the entity and field."""
    repo = ItemRepository(session)
    too_long, fine = "n" * 101, "x" * 100
    with request_scope(tenant_id=A):
        with pytest.raises(ValidationError, match=r"Item\.name: .*over the column's 100"):
            await repo.upsert_many([Item(sku=f"s{i}", name=too_long) for i in range(3)])
        with pytest.raises(ValidationError, match=r"Item\.sku: .*over the column's 40"):
            await repo.upsert_many(
                [Item(sku=f"g{i}", name=fine) for i in range(50)] + [Item(sku="s" * 41, name=fine)]
            )
        nameless = [Item(sku="n1", name=fine), Item(sku="n2", name=None)]  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match=r"Item\.name cannot be None"):
            await repo.upsert_many(nameless, on=("sku",))
        bad_qty = [Item(sku="q1", name=fine, qty=1), Item(sku="q2", name=fine, qty="2")]  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match=r"Item\.qty: expected an integer"):
            await repo.upsert_many(bad_qty)
        # A valid object shared by every row is checked once and written for each.
        assert (await repo.upsert_many([Item(sku=f"s{i}", name=fine) for i in range(3)])).is_success
    stored = await _stored(session)
    assert sorted(stored) == ["s0", "s1", "s2"] and {v[1] for v in stored.values()} == {fine}


class RenamingItemRepository(ItemRepository):
    """Maps its entity its own way: upsert_many takes the row-by-row path."""

    def _entity_to_dict(self, entity: Item) -> dict[str, object]:
        values = super()._entity_to_dict(entity)
        values["name"] = str(values["name"]).upper()
        return values


async def test_upsert_uses_an_overridden_mapping(session: AsyncSession) -> None:
    repo = RenamingItemRepository(session)
    with request_scope(tenant_id=A):
        assert (await repo.upsert_many([Item(sku="m", name="lower")], on=("sku",))).is_success
        with pytest.raises(ValidationError, match=r"Item\.sku: .*over the column's 40"):
            await repo.upsert_many([Item(sku="c" * 41, name="x")], on=("sku",))
    assert (await _stored(session))["m"][1] == "LOWER"


async def test_upsert_never_updates_another_tenants_row(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with request_scope(tenant_id=B):
        bob = Item(sku="shared", name="B's")
        await repo.upsert_many([bob], on=("sku",))
    await session.commit()
    with request_scope(tenant_id=A):
        # Another tenant's entity is refused outright, as add refuses it.
        with pytest.raises(TenantScopeError):
            await repo.upsert_many([Item(sku="x", name="x", tenant_id=B)], on=("sku",))
        # A's own new row plus one that collides with B's sku: all refused, none written.
        result = await repo.upsert_many(
            [Item(sku="mine", name="A's"), Item(sku="shared", name="hacked")], on=("sku",)
        )
        assert isinstance(result.error, ConflictError)
        assert result.error.code == "tenant_scope.mismatch"
        assert "B" not in result.error.message and str(B) not in result.error.message
        # Same through the primary key.
        clash = Item(sku="other", name="hacked")
        clash.id = bob.id
        assert isinstance((await repo.upsert_many([clash])).error, ConflictError)
    await session.commit()  # the transaction is still usable
    stored = await _stored(session)
    assert stored == {"shared": (B, "B's", None, 1, bob.id)}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["p", "q", "r", "s"]),
            st.text(alphabet="xyz", min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_property_no_upsert_changes_another_tenants_row(
    session: AsyncSession, plan: list[tuple[str, str, str]]
) -> None:
    """Whatever the sequence of upserts by A and B, a row only ever changes under its own
    tenant, and a refused call writes nothing."""
    repo = ItemRepository(session)
    tenants = {"A": A, "B": B}
    await session.rollback()
    async with session.begin():
        await session.execute(items_table.delete())
    owner: dict[str, str] = {}
    names: dict[str, str] = {}
    for who, sku, name in plan:
        with request_scope(tenant_id=tenants[who]):
            result = await repo.upsert_many([Item(sku=sku, name=name)], on=("sku",))
        if sku in owner and owner[sku] != who:
            assert isinstance(result.error, ConflictError)
        else:
            assert result.is_success
            owner[sku] = who
            names[sku] = name
    stored = await _stored(session)
    assert {sku: (tenants[owner[sku]], names[sku]) for sku in owner} == {
        sku: (row[0], row[1]) for sku, row in stored.items()
    }
    await session.rollback()


async def test_upsert_chunks_under_the_parameter_limit(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL binds one array per column (no parameter limit); smaller chunks there
    # make this test cross chunk boundaries on both dialects.
    monkeypatch.setattr(repository_bulk, "_PG_CHUNK_ROWS", 1_000)
    repo = ItemRepository(session)
    per_row = len(items_table.c) + 2
    count = chunk_rows(per_row) * 3 + 7  # several chunks, over 32,767 parameters in all
    assert count * per_row > 32_767
    with request_scope(tenant_id=A):
        items = [Item(sku=f"c{i:06d}", name="n", qty=i) for i in range(count)]
        assert (await repo.upsert_many(items, on=("sku",))).is_success
        changed = [Item(sku=f"c{i:06d}", name="m", qty=-i) for i in range(count)]
        assert (await repo.upsert_many(changed, on=("sku",))).is_success
    stored = await _stored(session)
    assert len(stored) == count
    assert {row[3] for row in stored.values()} == {2}
    assert stored["c000005"][2] == -5
    # A refusal in the last chunk undoes the chunks written before it.
    with request_scope(tenant_id=B):
        clash = [Item(sku=f"d{i:06d}", name="n") for i in range(count)]
        clash.append(Item(sku="c000001", name="taken by A"))
        assert isinstance((await repo.upsert_many(clash, on=("sku",))).error, ConflictError)
    assert len(await _stored(session)) == count


async def test_upsert_records_outbox_events_of_aggregates(
    session_factory: SessionFactory, session: AsyncSession
) -> None:
    uow = UnitOfWork(session_factory, outbox=DefaultOutboxRecorder())
    with request_scope(tenant_id=A):
        async with uow.begin() as tx:
            items = [Item(sku=f"e{i}", name="n") for i in range(3)]
            for item in items:
                item.record_event(UserRegistered(email=f"{item.sku}@x"))
            assert (await tx.repository(ItemRepository).upsert_many(items, on=("sku",))).is_success
    rows = (await session.execute(select(outbox_table))).all()
    assert len(rows) == 3


async def test_stream_reads_every_row_in_order_in_batches(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with request_scope(tenant_id=A):
        await repo.upsert_many(
            [Item(sku=f"a{i:03d}", name="n", qty=i % 7 if i % 5 else None) for i in range(53)],
            on=("sku",),
        )
        await repo.soft_delete((await repo.list_cursor()).items[0])
    with request_scope(tenant_id=B):
        await repo.upsert_many([Item(sku="b1", name="n")], on=("sku",))
    with request_scope(tenant_id=A):
        got = [i.sku async for i in repo.stream(sort=[Sort("qty", "desc")], batch=4)]
        assert len(got) == 52 and "b1" not in got
        listed = []
        cursor = None
        from qxdb import CursorPagination

        while True:
            page = await repo.list_cursor(
                CursorPagination(sort=[Sort("qty", "desc")], limit=50, cursor=cursor)
            )
            listed += [i.sku for i in page.items]
            if not page.has_next:
                break
            cursor = page.next_cursor
        assert got == listed  # the same order as list_cursor, NULLs included
        filtered = [i.qty async for i in repo.stream([Filter("qty", "gte", 5)], batch=3)]
        assert sorted(filtered) == sorted(q for q in filtered if q is not None and q >= 5)
        assert len(filtered) == sum(1 for i in range(1, 53) if i % 5 and i % 7 >= 5)
        deleted = [i async for i in repo.stream(include_deleted=True, batch=1000)]
        assert len(deleted) == 53
    with system_scope():
        assert len([i async for i in repo.stream(batch=10)]) == 53


async def test_stream_refuses_bad_arguments_at_the_call(session: AsyncSession) -> None:
    repo = ItemRepository(session)
    with pytest.raises(TenantScopeError):
        repo.stream()
    with request_scope(tenant_id=A):
        for batch in (0, -1, True, 10_001, "5"):
            with pytest.raises(InvalidQueryError, match="batch"):
                repo.stream(batch=batch)  # type: ignore[arg-type]
        with pytest.raises(InvalidQueryError, match="not sortable"):
            repo.stream(sort=[Sort("created_by")])
        with pytest.raises(InvalidQueryError, match="not filterable"):
            repo.stream([Filter("tenant_id", "eq", A)])
        with pytest.raises(InvalidQueryError):
            repo.stream([Filter("qty", "eq", "many")])
        assert [i async for i in repo.stream()] == []
