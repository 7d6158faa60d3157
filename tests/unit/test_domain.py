from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import ClassVar
from uuid import UUID

import pytest
from sqlalchemy import Column, String, Table

from qxdb import AggregateRoot, DomainEvent, IntegrationEvent, make_metadata, make_registry, uuid7
from qxdb.mapping import standard_audit_columns, uuid_column


class OrderPlaced(IntegrationEvent):
    event_name: ClassVar[str] = "orders.placed"
    event_version: ClassVar[int] = 2
    order_id: UUID
    total: str


class OrderNoted(DomainEvent):
    note: str


@dataclass(kw_only=True, eq=False)
class Order(AggregateRoot):
    customer: str = ""

    def place(self) -> None:
        self.record_event(OrderPlaced(order_id=self.id, total="10.00"))
        self.record_event(OrderNoted(note="placed"))


def test_events_are_pulled_in_order_and_stamped_with_the_aggregate() -> None:
    order = Order(customer="ada")
    assert not order.has_pending_events
    order.place()
    assert order.has_pending_events
    events = order.pull_events()
    assert [type(e) for e in events] == [OrderPlaced, OrderNoted]
    assert all(e.aggregate_id == order.id for e in events)
    assert not order.has_pending_events
    assert order.pull_events() == []


def test_envelope_separates_metadata_and_payload() -> None:
    event = OrderPlaced(order_id=uuid7(), total="1.50", tenant_id=uuid7())
    env = event.envelope()
    assert env["event_name"] == "orders.placed"
    assert env["event_version"] == 2
    assert env["event_id"] == str(event.event_id)
    assert env["tenant_id"] == str(event.tenant_id)
    assert env["payload"] == {"order_id": str(event.order_id), "total": "1.50"}
    assert OrderNoted.event_name == "OrderNoted"  # defaults to the class name


def test_event_times_must_be_aware() -> None:
    # A naive time would only be refused by the outbox column at commit, after handlers ran.
    with pytest.raises(ValueError, match="timezone"):
        OrderNoted(note="x", occurred_at=datetime(2024, 1, 1))
    tokyo = datetime(2024, 1, 1, 9, tzinfo=timezone(timedelta(hours=9)))
    assert OrderNoted(note="x", occurred_at=tokyo).envelope()["occurred_at"].endswith("+09:00")


async def test_events_survive_imperative_mapping_which_bypasses_init(sqlite_url: str) -> None:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    @dataclass(kw_only=True, eq=False)
    class MappedOrder(AggregateRoot):
        customer: str = ""

    metadata = make_metadata()
    table = Table(
        "orders_map", metadata, uuid_column("id", primary_key=True), Column("customer", String(50)),
        *standard_audit_columns(),
    )  # fmt: skip
    registry = make_registry(metadata)
    registry.map_imperatively(MappedOrder, table)
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with AsyncSession(engine) as session:
            session.add(MappedOrder(customer="bo"))
            await session.commit()
        async with AsyncSession(engine) as session:
            loaded = (await session.execute(select(MappedOrder))).scalar_one()
            assert loaded.customer == "bo"
            assert not loaded.has_pending_events
            loaded.record_event(OrderNoted(note="loaded"))
            assert [e.aggregate_id for e in loaded.pull_events()] == [loaded.id]
    finally:
        await engine.dispose()
        registry.dispose()
