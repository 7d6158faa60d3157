"""Snapshots of the tables of a ``MetaData``, judged as PostgreSQL would store them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Sequence,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import conv

from qxdb.conventions.naming import truncated
from qxdb.conventions.snapshot import (
    ColumnInfo,
    ForeignKeyInfo,
    KeyInfo,
    TableSnapshot,
    describe_type,
    normalize_where,
)
from qxdb.errors import ConfigurationError
from qxdb.pg_partitions import partition_key_columns

__all__ = ["IGNORE_KEY", "OUTBOX_KEY", "POSTGRESQL", "snapshot_metadata", "snapshot_table"]

# Table.info keys: {"qxdb_schema_ignore": {"QX004": "why"}} and the outbox marker.
IGNORE_KEY = "qxdb_schema_ignore"
OUTBOX_KEY = "qxdb_outbox"

POSTGRESQL: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


def snapshot_metadata(metadata: MetaData, dialect: Dialect = POSTGRESQL) -> list[TableSnapshot]:
    return [snapshot_table(table, dialect) for table in metadata.tables.values()]


def _name(value: Any) -> str | None:
    # Unnamed constraints carry a non-string sentinel until DDL time.
    if not isinstance(value, str):
        return None
    # PostgreSQL gets convention names shortened with a hash suffix; judge that name.
    return truncated(str(value)) if isinstance(value, conv) else str(value)


_INTEGER_KINDS = frozenset({"smallint", "integer", "bigint"})


def _column(table: Table, column: Column[Any], dialect: Dialect) -> ColumnInfo:
    type_info = describe_type(column.type, dialect)
    serial = type_info.kind in _INTEGER_KINDS and (
        column is table.autoincrement_column
        or column.identity is not None
        or isinstance(column.default, Sequence)
    )
    return ColumnInfo(column.name, type_info, nullable=bool(column.nullable), serial=serial)


def snapshot_table(table: Table, dialect: Dialect = POSTGRESQL) -> TableSnapshot:
    columns = {c.name: _column(table, c, dialect) for c in table.columns}
    pk_cols = tuple(c.name for c in table.primary_key.columns)
    primary_key = (
        KeyInfo("primary", _name(table.primary_key.name), pk_cols, unique=True) if pk_cols else None
    )
    uniques: list[KeyInfo] = []
    checks: list[str | None] = []
    foreign_keys: list[ForeignKeyInfo] = []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            cols = tuple(c.name for c in constraint.columns)
            uniques.append(KeyInfo("unique", _name(constraint.name), cols, unique=True))
        elif isinstance(constraint, CheckConstraint):
            checks.append(_name(constraint.name))
        elif isinstance(constraint, ForeignKeyConstraint):
            # target_fullname needs no resolution: the target may live in another MetaData.
            targets = [e.target_fullname.split(".") for e in constraint.elements]
            foreign_keys.append(
                ForeignKeyInfo(
                    name=_name(constraint.name),
                    columns=tuple(c.name for c in constraint.columns),
                    referred_table=targets[0][-2],
                    referred_columns=tuple(t[-1] for t in targets),
                    ondelete=constraint.ondelete,
                )
            )
    indexes = [
        KeyInfo(
            "index",
            _name(index.name),
            tuple(e.name if isinstance(e, Column) else str(e) for e in index.expressions),
            unique=bool(index.unique),
            where=normalize_where(_where(index)),
            method=_method(index.dialect_options["postgresql"].get("using")),
        )
        for index in table.indexes
    ]
    return TableSnapshot(
        name=table.name,
        columns=columns,
        primary_key=primary_key,
        uniques=uniques,
        indexes=indexes,
        foreign_keys=foreign_keys,
        check_names=checks,
        is_outbox=bool(table.info.get(OUTBOX_KEY)),
        partition_key=partition_key_columns(
            table.dialect_options["postgresql"].get("partition_by")
        ),
        ignores=_table_ignores(table),
    )


def _where(index: Index) -> Any:
    for dialect in ("postgresql", "sqlite"):
        where = index.dialect_options[dialect].get("where")
        if where is not None:
            return where
    return None


def _table_ignores(table: Table) -> dict[str, str]:
    raw = table.info.get(IGNORE_KEY)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f'table {table.name}: info["{IGNORE_KEY}"] must map rule ids to reasons, '
            f"got {type(raw).__name__}"
        )
    return {str(rule): str(reason) for rule, reason in raw.items()}


def _method(using: object) -> str:
    """The index access method; btree when none is given (as PostgreSQL defaults)."""
    return str(using).lower() if using else "btree"
