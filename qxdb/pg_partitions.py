"""What PostgreSQL's catalog says about partitioned tables, for every tool that compares a
database with the models.

A partition is storage of its parent, not a model: ``migrate check`` must not call it
drift (autogenerate would write ``op.drop_table`` for each, the default partition and its
rows included), and ``schema check --database`` must not judge it as a table of its own.
A partitioned table's primary key holds its partition key, which the key rules accept.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["partition_key_columns", "partition_tables", "partitioned_keys"]

_KEY_LIST = re.compile(r"\((.*)\)\s*$", re.DOTALL)


def partition_key_columns(definition: str | None) -> tuple[str, ...]:
    """``"RANGE (recorded_at)"`` -> ``("recorded_at",)``: the plain columns of a
    ``PARTITION BY`` clause (an expression in it is kept as written)."""
    if not definition:
        return ()
    found = _KEY_LIST.search(definition.strip())
    if found is None:
        return ()
    return tuple(part.strip().strip('"') for part in found.group(1).split(",") if part.strip())


def partition_tables(conn: Connection, schema: str | None = None) -> set[str]:
    """Names of the tables of ``schema`` (default: the search path's first) that are
    partitions of another table; empty on any other database than PostgreSQL."""
    return {name for name, is_partition, _ in _rows(conn, schema) if is_partition}


def partitioned_keys(conn: Connection, schema: str | None = None) -> dict[str, tuple[str, ...]]:
    """Partitioned tables of ``schema`` -> their partition key columns (PostgreSQL), with
    those of their partitioned partitions after them: a primary key must hold every
    level's key (sub-partitioning), so every level's key is the table's."""
    keys: dict[str, tuple[str, ...]] = {}
    for name, _, definitions in _rows(conn, schema):
        if not definitions:
            continue
        columns: list[str] = []
        for definition in definitions:
            columns += [c for c in partition_key_columns(definition) if c not in columns]
        keys[name] = tuple(columns)
    return keys


def _rows(conn: Connection, schema: str | None) -> list[tuple[str, bool, list[str]]]:
    """(name, is a partition, partition keys of its tree, top level first; empty unless it
    is a partitioned table) of every table of ``schema`` that takes part in partitioning."""
    if conn.dialect.name != "postgresql":
        return []
    from sqlalchemy import text

    query = text(
        "SELECT c.relname, c.relispartition, "
        "CASE WHEN c.relkind = 'p' THEN ARRAY("
        "  SELECT pg_get_partkeydef(t.relid) FROM pg_partition_tree(c.oid) t "
        "  JOIN pg_class k ON k.oid = t.relid WHERE k.relkind = 'p' "
        "  ORDER BY t.level, t.relid) END "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE (c.relispartition OR c.relkind = 'p') "
        "AND n.nspname = coalesce(CAST(:schema AS text), current_schema())"
    )
    return [
        (str(r[0]), bool(r[1]), [str(d) for d in r[2] or ()])
        for r in conn.execute(query, {"schema": schema})
    ]
