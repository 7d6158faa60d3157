"""What only a live PostgreSQL knows about its tables, read from the system catalogs.

The index facts also stand in for SQLAlchemy's index reflection on PostgreSQL
(``from_database``): one query instead of its slower per-column one.

Reflection describes the schema as declared; the health rules also need its *state*:
whether an index build finished, whether a constraint was ever validated, how far each
sequence has run, which triggers are disabled, which indexes no query has used. Each kind
of fact is one catalog query for the whole schema (no extension, no per-table round
trip), so the cost does not grow with the number of tables beyond the rows read.

This is a read-only operation: only catalog and statistics views are queried.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = [
    "Catalog",
    "DisabledTrigger",
    "IndexFacts",
    "SequenceFacts",
    "TableFacts",
    "UnvalidatedConstraint",
    "read_catalog",
    "type_range",
]

# The values an integer column of each type can hold: a sequence behind a column stops
# at the smaller of its own limit and the column's.
_TYPE_RANGES: dict[str, tuple[int, int]] = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def type_range(type_name: str) -> tuple[int, int] | None:
    """(min, max) of an integer type as ``format_type`` spells it; None for others."""
    return _TYPE_RANGES.get(type_name)


@dataclass(frozen=True, slots=True)
class IndexFacts:
    name: str
    valid: bool  # false after a failed CREATE INDEX CONCURRENTLY (or one still running)
    unique: bool
    primary: bool
    constraint: str | None  # "p", "u", "x" when the index backs a constraint
    method: str  # btree, gin, gist, hash, brin …
    # Key columns in order; None where the key is an expression.
    columns: tuple[str | None, ...]
    nullable: tuple[bool, ...]  # per key column; False for expressions (unknown)
    expressions: tuple[str | None, ...]  # the expression's text where columns has None
    predicate: str | None  # partial index WHERE, as pg_get_expr renders it
    nulls_not_distinct: bool  # PostgreSQL 15: UNIQUE NULLS NOT DISTINCT
    scans: int | None  # pg_stat_user_indexes.idx_scan; None without statistics


@dataclass(frozen=True, slots=True)
class UnvalidatedConstraint:
    name: str
    kind: str  # "c" check, "f" foreign key


@dataclass(frozen=True, slots=True)
class DisabledTrigger:
    name: str
    # Set for the internal triggers that enforce a foreign key: disabling them turns the
    # key off without a trace in the schema.
    foreign_key: str | None


@dataclass(frozen=True, slots=True)
class SequenceFacts:
    name: str  # schema-qualified where not in the checked schema
    column: str
    column_type: str
    sequence_type: str
    last_value: int | None  # None: never used, or no privilege to read it
    min_value: int
    max_value: int
    increment: int

    @property
    def limit(self) -> int:
        """The value at which inserts start failing: the sequence's or the column's end."""
        low, high = type_range(self.column_type) or (self.min_value, self.max_value)
        return min(self.max_value, high) if self.increment > 0 else max(self.min_value, low)

    @property
    def used(self) -> float | None:
        """Fraction of the usable range consumed, from the sequence's start side."""
        if self.last_value is None:
            return None
        start = self.min_value if self.increment > 0 else self.max_value
        span = abs(self.limit - start)
        return abs(self.last_value - start) / span if span else 1.0


@dataclass(slots=True)
class TableFacts:
    name: str
    unlogged: bool = False
    indexes: list[IndexFacts] = field(default_factory=list)
    unvalidated: list[UnvalidatedConstraint] = field(default_factory=list)
    disabled_triggers: list[DisabledTrigger] = field(default_factory=list)
    sequences: list[SequenceFacts] = field(default_factory=list)
    # pg_stat_user_tables.n_live_tup (an estimate); None without statistics. The indexes
    # of an empty table (a freshly migrated database) say nothing by being unused.
    live_rows: int | None = None


@dataclass(slots=True)
class Catalog:
    server_version: int  # server_version_num, e.g. 150004
    # pg_stat_database.stats_reset: None when never reset (counting since the cluster began).
    stats_reset: datetime | None
    tables: dict[str, TableFacts] = field(default_factory=dict)

    def table(self, name: str) -> TableFacts:
        return self.tables.get(name) or TableFacts(name)


# Key columns are unnested once for all indexes (a per-index subquery costs 2-3x more).
_INDEXES = """
WITH ix AS (
    SELECT x.*, t.relname AS table_name
    FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
    WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = COALESCE(:schema, current_schema()))
      AND t.relname = ANY(:tables)
), keys AS (
    SELECT ix.indexrelid, array_agg(a.attname ORDER BY k.n) AS columns,
           array_agg(COALESCE(NOT a.attnotnull, false) ORDER BY k.n) AS nullable,
           array_agg(CASE WHEN k.attnum = 0 THEN pg_get_indexdef(ix.indexrelid, k.n::int, true)
                     END ORDER BY k.n) AS expressions
    FROM ix CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
    LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum AND k.attnum > 0
    WHERE k.n <= ix.indnkeyatts
    GROUP BY ix.indexrelid
)
SELECT ix.table_name, i.relname AS index_name,
       ix.indisvalid AND ix.indisready AS valid, ix.indisunique AS is_unique,
       ix.indisprimary AS is_primary, con.contype::text AS constraint_type, am.amname AS method,
       keys.columns, keys.nullable, keys.expressions,
       pg_get_expr(ix.indpred, ix.indrelid) AS predicate,
       ix.indnullsnotdistinct AS nulls_not_distinct,
       s.idx_scan AS scans
FROM ix
JOIN keys ON keys.indexrelid = ix.indexrelid
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_am am ON am.oid = i.relam
LEFT JOIN pg_constraint con ON con.conindid = ix.indexrelid AND con.conrelid = ix.indrelid
     AND con.contype IN ('p', 'u', 'x')
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = ix.indexrelid
ORDER BY ix.table_name, i.relname
"""
# NULLS NOT DISTINCT (and its catalog column) arrived in PostgreSQL 15.
_INDEXES_BEFORE_15 = _INDEXES.replace("ix.indnullsnotdistinct", "false")

_UNVALIDATED = """
SELECT t.relname AS table_name, c.conname AS name, c.contype::text AS kind
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE NOT c.convalidated AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = COALESCE(:schema, current_schema())) AND t.relname = ANY(:tables)
ORDER BY t.relname, c.conname
"""

_DISABLED_TRIGGERS = """
SELECT t.relname AS table_name, g.tgname AS name,
       CASE WHEN g.tgisinternal AND con.contype = 'f' THEN con.conname END AS foreign_key
FROM pg_trigger g
JOIN pg_class t ON t.oid = g.tgrelid
LEFT JOIN pg_constraint con ON con.oid = g.tgconstraint
WHERE g.tgenabled = 'D' AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = COALESCE(:schema, current_schema())) AND t.relname = ANY(:tables)
ORDER BY t.relname, g.tgname
"""

_UNLOGGED = """
SELECT relname AS table_name FROM pg_class
WHERE relpersistence = 'u' AND relkind IN ('r', 'p')
  AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = COALESCE(:schema, current_schema())) AND relname = ANY(:tables)
"""

# A sequence feeds a column as its identity ('i'), as an owned serial ('a'), or through
# a DEFAULT nextval(...) expression (a dependency of the column default on the sequence).
_SEQUENCES = """
WITH feeds AS (
    SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
    UNION
    SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
)
SELECT t.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, NULL) AS column_type,
       CASE WHEN sc.relnamespace = t.relnamespace THEN sc.relname
            ELSE sn.nspname || '.' || sc.relname END AS sequence_name,
       format_type(s.seqtypid, NULL) AS sequence_type,
       CASE WHEN has_sequence_privilege(sc.oid, 'SELECT,USAGE')
            THEN pg_sequence_last_value(sc.oid) END AS last_value,
       s.seqmin AS min_value, s.seqmax AS max_value, s.seqincrement AS increment
FROM feeds f
JOIN pg_sequence s ON s.seqrelid = f.seq
JOIN pg_class sc ON sc.oid = f.seq
JOIN pg_namespace sn ON sn.oid = sc.relnamespace
JOIN pg_class t ON t.oid = f.rel
JOIN pg_attribute a ON a.attrelid = f.rel AND a.attnum = f.attnum
WHERE t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = COALESCE(:schema, current_schema())) AND t.relname = ANY(:tables)
ORDER BY t.relname, a.attname
"""

_LIVE_ROWS = """
SELECT relname AS table_name, n_live_tup AS live_rows
FROM pg_stat_user_tables
WHERE schemaname = COALESCE(:schema, current_schema()) AND relname = ANY(:tables)
"""

_STATS_RESET = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"


def read_catalog(conn: Connection, *, schema: str | None, tables: Collection[str]) -> Catalog:
    """The catalog facts of ``tables`` in ``schema`` (the connection's default when None)."""
    version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    catalog = Catalog(
        server_version=version,
        stats_reset=conn.execute(text(_STATS_RESET)).scalar_one_or_none(),
        tables={name: TableFacts(name) for name in tables},
    )
    params: dict[str, Any] = {"schema": schema, "tables": list(tables)}
    if not tables:
        return catalog

    def rows(sql: str) -> Any:
        return conn.execute(text(sql), params).mappings()

    for row in rows(_INDEXES if version >= 150000 else _INDEXES_BEFORE_15):
        catalog.table(row["table_name"]).indexes.append(
            IndexFacts(
                name=row["index_name"],
                valid=bool(row["valid"]),
                unique=bool(row["is_unique"]),
                primary=bool(row["is_primary"]),
                constraint=row["constraint_type"],
                method=row["method"],
                columns=tuple(row["columns"]),
                nullable=tuple(bool(n) for n in row["nullable"]),
                expressions=tuple(row["expressions"]),
                predicate=row["predicate"],
                nulls_not_distinct=bool(row["nulls_not_distinct"]),
                scans=row["scans"],
            )
        )
    for row in rows(_UNVALIDATED):
        catalog.table(row["table_name"]).unvalidated.append(
            UnvalidatedConstraint(row["name"], row["kind"])
        )
    for row in rows(_DISABLED_TRIGGERS):
        catalog.table(row["table_name"]).disabled_triggers.append(
            DisabledTrigger(row["name"], row["foreign_key"])
        )
    for row in rows(_UNLOGGED):
        catalog.table(row["table_name"]).unlogged = True
    for row in rows(_LIVE_ROWS):
        catalog.table(row["table_name"]).live_rows = row["live_rows"]
    for row in rows(_SEQUENCES):
        catalog.table(row["table_name"]).sequences.append(
            SequenceFacts(
                name=row["sequence_name"],
                column=row["column_name"],
                column_type=row["column_type"],
                sequence_type=row["sequence_type"],
                last_value=row["last_value"],
                min_value=row["min_value"],
                max_value=row["max_value"],
                increment=row["increment"],
            )
        )
    return catalog
