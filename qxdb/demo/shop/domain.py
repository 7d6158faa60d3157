"""The shop's domain: plain dataclasses and events, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from qxdb import AggregateRoot, Entity, IntegrationEvent


class OrderPlaced(IntegrationEvent):
    event_name: ClassVar[str] = "shop.order.placed"
    order_id: UUID
    customer_id: UUID
    total: Decimal


class OrderPaid(IntegrationEvent):
    event_name: ClassVar[str] = "shop.order.paid"
    order_id: UUID


@dataclass(kw_only=True, eq=False)
class Customer(Entity):
    name: str
    email: str


@dataclass(kw_only=True, eq=False)
class Order(AggregateRoot):
    customer_id: UUID
    total: Decimal
    status: str = "placed"
    note: str | None = None

    @classmethod
    def place(cls, customer_id: UUID, total: Decimal, note: str | None = None) -> Order:
        order = cls(customer_id=customer_id, total=total, note=note)
        order.record_event(OrderPlaced(order_id=order.id, customer_id=customer_id, total=total))
        return order

    def pay(self) -> None:
        if self.status != "placed":
            raise ValueError(f"order {self.id} is {self.status}, not placed")
        self.status = "paid"
        self.record_event(OrderPaid(order_id=self.id))
