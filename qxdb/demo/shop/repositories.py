"""The shop's repositories: allow-listed filters and sorts over the tables."""

from __future__ import annotations

from qxdb.repository import Repository

from .domain import Customer, Order
from .models import customers, orders


class CustomerRepository(Repository[Customer]):
    entity_cls = Customer
    table = customers
    filterable_fields = frozenset({"name", "email"})
    sortable_fields = frozenset({"name", "created_at"})


class OrderRepository(Repository[Order]):
    entity_cls = Order
    table = orders
    filterable_fields = frozenset({"status", "customer_id", "total"})
    sortable_fields = frozenset({"total", "created_at", "status", "note"})
