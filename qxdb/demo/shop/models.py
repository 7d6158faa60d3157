"""The shop's tables, built only with qxdb's helpers (so `qxdb schema check` passes)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Numeric, String, Table

from qxdb import include_outbox_table, make_metadata, standard_audit_columns, uuid_column
from qxdb.types import UUIDType

metadata = make_metadata()

customers = Table(
    "customers",
    metadata,
    uuid_column("id", primary_key=True),
    Column("name", String(100), nullable=False),
    Column("email", String(255), nullable=False),
    *standard_audit_columns(),
)

orders = Table(
    "orders",
    metadata,
    uuid_column("id", primary_key=True),
    Column(
        "customer_id",
        UUIDType(),
        ForeignKey("customers.id", ondelete="RESTRICT"),
        nullable=False,
        index=True,
    ),
    Column("status", String(20), nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    Column("note", String(200), nullable=True),
    *standard_audit_columns(),
)

outbox = include_outbox_table(metadata)
