"""What a revision does, in one shape whatever it was written with.

The recorder (Alembic operation objects) and the SQL reader (``op.execute`` text) both
produce :class:`Action` values; the checks only ever see these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DDL_ON_TABLE", "Action", "ColumnInfo", "Kind", "table_key"]

Kind = Literal[
    "create_table",
    "drop_table",
    "rename_table",
    "add_column",
    "drop_column",
    "rename_column",
    "set_not_null",
    "change_type",
    "other_alter",
    "create_index",
    "drop_index",
    "add_constraint",
    "drop_constraint",
    "validate_constraint",
    "enum_add_value",
    "set_lock_timeout",
    "data_change",
    "insert_rows",
    "other",
]

# Kinds that lock an existing table against reads or writes (what lock_timeout is for).
DDL_ON_TABLE: frozenset[str] = frozenset(
    {
        "drop_table",
        "rename_table",
        "add_column",
        "drop_column",
        "rename_column",
        "set_not_null",
        "change_type",
        "other_alter",
        "create_index",
        "drop_index",
        "add_constraint",
        "drop_constraint",
    }
)


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type_text: str  # PostgreSQL spelling, upper case: "VARCHAR(20)", "TIMESTAMP WITHOUT TIME ZONE"
    primary_key: bool = False
    nullable: bool = True
    default_text: str | None = None  # server default as SQL text
    identity: bool = False  # identity, serial, sequence default or generated: filled per row
    foreign_key: bool = False  # REFERENCES …: adding it validates every row


@dataclass(slots=True)
class Action:
    kind: Kind
    line: int
    table: str | None = None
    column: ColumnInfo | None = None
    columns: tuple[ColumnInfo, ...] = ()  # create_table
    name: str | None = None  # index / constraint name, or the new name of a rename
    column_name: str | None = None
    concurrently: bool = False
    autocommit: bool = False  # inside op.get_context().autocommit_block()
    constraint: str | None = None  # "foreign_key", "check", "unique", "primary_key"
    not_valid: bool = False
    using_index: bool = False
    check_text: str | None = None
    old_type: str | None = None
    new_type: str | None = None
    statement: str | None = None  # data_change: "UPDATE", "DELETE", "INSERT"
    bounded: bool = True  # data_change: has a WHERE clause
    sql: str | None = None  # the raw statement, when the action came from SQL text
    extra: dict[str, str] = field(default_factory=dict)


def table_key(name: str | None, schema: str | None = None) -> str:
    """One spelling for a table across operations and SQL: unquoted, lower case."""
    if not name:
        return ""
    parts = [p.strip().strip('"').lower() for p in ([schema] if schema else []) + name.split(".")]
    parts = [p for p in parts if p]
    # "public.orders" in raw SQL and "orders" in an operation are the same table.
    if len(parts) == 2 and parts[0] == "public":
        parts = parts[1:]
    return ".".join(parts)
