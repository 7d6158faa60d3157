"""Snapshots of a live database's tables, through SQLAlchemy reflection.

One batched reflection call per kind of object (columns, keys, indexes …) for all the
tables at once: on PostgreSQL that is a handful of catalog queries, whatever the size of
the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import INTEGER, inspect
from sqlalchemy.engine import Connection, Dialect

from qxdb.conventions.catalog import Catalog, IndexFacts
from qxdb.conventions.snapshot import (
    ColumnInfo,
    ForeignKeyInfo,
    KeyInfo,
    TableSnapshot,
    describe_type,
    normalize_where,
)
from qxdb.core.identifiers import split_qualified
from qxdb.pg_partitions import partition_tables, partitioned_keys

__all__ = ["snapshot_database", "table_names"]

_INTEGER_KINDS = frozenset({"smallint", "integer", "bigint"})


def table_names(conn: Connection, *, schema: str | None, skip: Callable[[str], bool]) -> list[str]:
    """The tables of ``schema`` that the check looks at."""
    # A partition is its parent's storage, not a table of the models.
    partitions = partition_tables(conn, schema)
    return [
        n
        for n in inspect(conn).get_table_names(schema=schema)
        if not skip(n) and n not in partitions
    ]


def snapshot_database(
    conn: Connection,
    *,
    schema: str | None,
    names: list[str],
    outbox_tables: Collection[str],
    catalog: Catalog | None = None,
) -> list[TableSnapshot]:
    """Snapshots of ``names``. With a PostgreSQL ``catalog`` already read, its index facts
    replace SQLAlchemy's index reflection (the slowest of the reflection queries)."""
    inspector = inspect(conn)
    dialect = conn.dialect
    if not names:
        return []
    kw: dict[str, Any] = {"schema": schema, "filter_names": names}
    columns = inspector.get_multi_columns(**kw)
    pks = inspector.get_multi_pk_constraint(**kw)
    fks = inspector.get_multi_foreign_keys(**kw)
    indexes = (
        {(schema, name): _catalog_indexes(catalog.table(name).indexes) for name in names}
        if catalog is not None
        else inspector.get_multi_indexes(**kw)
    )
    uniques = inspector.get_multi_unique_constraints(**kw)
    checks = inspector.get_multi_check_constraints(**kw)
    outbox = {split_qualified(name)[1] for name in outbox_tables}
    partition_keys = partitioned_keys(conn, schema)
    snapshots = []
    for name in names:
        key = (schema, name)
        snapshots.append(
            _snapshot(
                name,
                dialect,
                schema=schema,
                columns=columns.get(key, []),
                pk=pks.get(key) or {},
                fks=fks.get(key, []),
                indexes=indexes.get(key, []),
                uniques=uniques.get(key, []),
                checks=checks.get(key, []),
                is_outbox=name in outbox,
                partition_key=partition_keys.get(name, ()),
            )
        )
    return snapshots


def _snapshot(
    name: str,
    dialect: Dialect,
    *,
    schema: str | None,
    columns: list[Any],
    pk: Any,
    fks: list[Any],
    indexes: list[Any],
    uniques: list[Any],
    checks: list[Any],
    is_outbox: bool,
    partition_key: tuple[str, ...] = (),
) -> TableSnapshot:
    pk_cols = tuple(pk.get("constrained_columns") or ())
    cols: dict[str, ColumnInfo] = {}
    for col in columns:
        type_info = describe_type(col["type"], dialect)
        if dialect.name == "sqlite":
            # INTEGER PRIMARY KEY makes the column an alias of the rowid: a sequence.
            serial = pk_cols == (col["name"],) and type(col["type"]) is INTEGER
        else:
            serial = bool(col.get("autoincrement") is True or col.get("identity"))
        cols[col["name"]] = ColumnInfo(
            col["name"],
            type_info,
            nullable=bool(col["nullable"]),
            serial=serial and type_info.kind in _INTEGER_KINDS,
        )
    unique_names = {u.get("name") for u in uniques}
    return TableSnapshot(
        name=name,
        columns=cols,
        primary_key=KeyInfo("primary", pk.get("name"), pk_cols, unique=True) if pk_cols else None,
        uniques=[
            KeyInfo("unique", u.get("name"), tuple(u["column_names"]), unique=True) for u in uniques
        ],
        indexes=[
            _index(ix, dialect)
            for ix in indexes
            # PostgreSQL also lists the index behind each unique constraint.
            if not (ix.get("duplicates_constraint") and ix.get("name") in unique_names)
        ],
        foreign_keys=[
            ForeignKeyInfo(
                name=fk.get("name"),
                columns=tuple(fk["constrained_columns"]),
                # A key into another schema must not be compared with a namesake here.
                referred_table=(
                    fk["referred_table"]
                    if fk.get("referred_schema") in (None, schema)
                    else f"{fk['referred_schema']}.{fk['referred_table']}"
                ),
                referred_columns=tuple(fk["referred_columns"]),
                ondelete=(fk.get("options") or {}).get("ondelete"),
            )
            for fk in fks
        ],
        check_names=[ck.get("name") for ck in checks],
        partition_key=partition_key,
        is_outbox=is_outbox,
    )


def _index(ix: Any, dialect: Dialect) -> KeyInfo:
    expressions = ix.get("expressions") or []
    names = ix.get("column_names") or []
    columns = tuple(
        n if n is not None else str(expressions[i] if i < len(expressions) else "?")
        for i, n in enumerate(names)
    )
    options = ix.get("dialect_options") or {}
    where = options.get(f"{dialect.name}_where")
    return KeyInfo(
        "index",
        ix.get("name"),
        columns,
        unique=bool(ix.get("unique")),
        where=normalize_where(where),
        method=str(options.get(f"{dialect.name}_using") or "btree").lower(),
    )


def _catalog_indexes(facts: list[IndexFacts]) -> list[dict[str, Any]]:
    """Catalog index facts in the shape of ``Inspector.get_multi_indexes`` entries: the
    primary key's index left out, a unique constraint's marked as its duplicate."""
    return [
        {
            "name": ix.name,
            "column_names": list(ix.columns),
            "expressions": [
                c if c is not None else e for c, e in zip(ix.columns, ix.expressions, strict=True)
            ],
            "unique": ix.unique,
            "duplicates_constraint": ix.name if ix.constraint == "u" else None,
            "dialect_options": {
                **({"postgresql_where": ix.predicate} if ix.predicate else {}),
                **({"postgresql_using": ix.method} if ix.method != "btree" else {}),
            },
        }
        for ix in facts
        if not ix.primary
    ]
