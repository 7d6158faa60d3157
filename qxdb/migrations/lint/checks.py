"""The checks: one pass over a revision's actions, raising rule ids with a line and subject.

Hazards that exist only for tables holding rows skip tables created earlier in the same
revision. What earlier revisions proved (a validated ``CHECK (col IS NOT NULL)``) travels
along the revision graph in :class:`History`, so linting only the pending revisions still
knows about the applied ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from qxdb.migrations.lint.actions import DDL_ON_TABLE, Action, ColumnInfo
from qxdb.migrations.lint.rules import RULES

__all__ = ["History", "Hit", "check_actions"]

_VOLATILE = re.compile(
    r"\b(random|gen_random_uuid|uuid_generate_v1|uuid_generate_v1mc|uuid_generate_v4|uuidv4|"
    r"uuidv7|clock_timestamp|timeofday|nextval|txid_current|setseed)\s*\(",
    re.I,
)
_NOT_NULL_CHECK = re.compile(r'^\(*\s*"?([\w$]+)"?\s+IS\s+NOT\s+NULL\s*\)*$', re.I)
_INT_KEYS = {"INTEGER", "SMALLINT", "SERIAL", "SMALLSERIAL"}
_VARCHAR = re.compile(r"^VARCHAR\((\d+)\)$")


@dataclass(frozen=True, slots=True)
class Hit:
    rule_id: str
    line: int
    subject: str
    detail: str = ""


@dataclass(slots=True)
class History:
    """What the revisions before this one established."""

    # (table, constraint name or "") -> column that a CHECK (col IS NOT NULL) covers
    not_null_checks: dict[tuple[str, str], str] = field(default_factory=dict)
    validated: set[tuple[str, str]] = field(default_factory=set)

    def copy(self) -> History:
        return History(dict(self.not_null_checks), set(self.validated))

    def merge(self, other: History) -> None:
        self.not_null_checks.update(other.not_null_checks)
        self.validated |= other.validated

    def proves_not_null(self, table: str, column: str) -> bool:
        return any(
            t == table and col == column.lower() and (t, name) in self.validated
            for (t, name), col in self.not_null_checks.items()
        )


def _type_hits(column: ColumnInfo, table: str, line: int, *, key_rule: bool) -> Iterable[Hit]:
    subject = f"{table}.{column.name}"
    t = column.type_text
    if key_rule and column.primary_key and t in _INT_KEYS:
        yield Hit("QXM016", line, subject, f"primary key of type {t.lower()}")
    if t == "TIMESTAMP WITHOUT TIME ZONE":
        yield Hit("QXM017", line, subject)
    if t.startswith("CHAR("):
        yield Hit("QXM018", line, subject, t.lower())
    if _VARCHAR.match(t):
        yield Hit("QXM019", line, subject, t.lower())


def _safe_type_change(old: str | None, new: str | None) -> bool:
    """varchar(n) -> varchar(m >= n) or text: metadata only, no rewrite."""
    if not old or not new:
        return False
    before = _VARCHAR.match(old)
    if before is None and old != "VARCHAR":
        return False
    if new in {"TEXT", "VARCHAR"}:
        return True
    after = _VARCHAR.match(new)
    return bool(before and after and int(after.group(1)) >= int(before.group(1)))


def _uses(action: Action, literal: str) -> bool:
    """Does this action write the enum value ``literal`` (a quoted SQL string)?"""
    texts = [action.sql, action.check_text]
    if action.column is not None:
        texts.append(action.column.default_text)
    return any(text and literal in text for text in texts)


def check_actions(
    actions: list[Action], history: History, *, lock_timeout_set: bool = False
) -> list[Hit]:
    """Every hazard in one revision; ``history`` is updated with what it establishes.

    ``lock_timeout_set``: the migration connection already has a lock_timeout (the
    project's env.py runs through qxdb), so QXM022 has nothing to say.
    """
    hits: list[Hit] = []
    created: set[str] = set()
    created_indexes: set[str] = set()
    lock_timeout = lock_timeout_set
    lock_reported = False
    ddl_line = 0
    data: list[Action] = []

    def existing(table: str | None) -> bool:
        return table is None or table not in created

    def add(rule_id: str, a: Action, subject: str, detail: str = "") -> None:
        hits.append(Hit(rule_id, a.line, subject, detail))

    local_timeout = False
    in_autocommit = False
    new_values: list[Action] = []  # ADD VALUE in the revision's transaction, not yet used
    for a in actions:
        table = a.table or ""
        if a.autocommit != in_autocommit:
            # A transaction boundary (autocommit_block): SET LOCAL ends with the transaction.
            in_autocommit = a.autocommit
            if local_timeout:
                lock_timeout, local_timeout = lock_timeout_set, False
        if a.autocommit:
            new_values.clear()  # the transaction that added them has committed
        for added in list(new_values):
            if a is not added and _uses(a, added.extra["value"]):
                new_values.remove(added)
                add(
                    "QXM020",
                    a,
                    f"type {added.name}",
                    f"{added.extra['value']} added on line {added.line}",
                )
        if a.kind == "set_lock_timeout":
            lock_timeout = True
            local_timeout = a.extra.get("local") == "yes"
        takes_lock = (
            a.kind in DDL_ON_TABLE
            and existing(a.table)
            and not (a.kind in {"create_index", "drop_index"} and a.concurrently)
            and not (a.kind == "drop_index" and a.name in created_indexes)
        )
        if takes_lock:
            ddl_line = ddl_line or a.line
            if not lock_timeout and not lock_reported:
                lock_reported = True
                add("QXM022", a, table or str(a.name), "no SET lock_timeout before it")

        if a.kind == "create_table":
            created.add(table)
            for column in a.columns:
                hits.extend(_type_hits(column, table, a.line, key_rule=True))
        elif a.kind == "add_column" and a.column is not None:
            column = a.column
            subject = f"{table}.{column.name}"
            hits.extend(_type_hits(column, table, a.line, key_rule=True))
            if existing(a.table):
                if column.primary_key:
                    add("QXM015", a, subject)
                elif column.identity or (
                    column.default_text and _VOLATILE.search(column.default_text)
                ):
                    add("QXM008", a, subject, f"default {column.default_text or 'identity'}")
                elif not column.nullable and column.default_text is None:
                    add("QXM007", a, subject)
                if column.foreign_key:
                    add("QXM004", a, subject, "REFERENCES on the new column")
        elif a.kind == "create_index":
            if a.name:
                created_indexes.add(a.name)
            if a.concurrently and not a.autocommit:
                add("QXM003", a, f"index {a.name or '?'} on {table}")
            if existing(a.table) and not a.concurrently:
                add("QXM001", a, f"index {a.name or '?'} on {table}")
        elif a.kind == "drop_index":
            if a.concurrently and not a.autocommit:
                add("QXM003", a, f"index {a.name}")
            if not a.concurrently and existing(a.table) and a.name not in created_indexes:
                add("QXM002", a, f"index {a.name}" + (f" on {table}" if table else ""))
        elif a.kind == "add_constraint":
            subject = f"{a.constraint} {a.name or '(unnamed)'} on {table}"
            if existing(a.table):
                if a.constraint == "foreign_key" and not a.not_valid:
                    add("QXM004", a, subject)
                elif a.constraint == "check" and not a.not_valid:
                    add("QXM005", a, subject)
                elif a.constraint == "unique" and not a.using_index:
                    add("QXM014", a, subject)
                elif a.constraint == "primary_key" and not a.using_index:
                    add("QXM015", a, subject)
            if a.constraint == "check" and a.check_text:
                found = _NOT_NULL_CHECK.match(a.check_text.strip())
                if found:
                    key = (table, (a.name or "").lower())
                    history.not_null_checks[key] = found.group(1).lower()
                    if not a.not_valid:
                        history.validated.add(key)
        elif a.kind == "validate_constraint":
            history.validated.add((table, (a.name or "").lower()))
        elif a.kind == "set_not_null":
            column_name = a.column_name or "?"
            if existing(a.table) and not history.proves_not_null(table, column_name):
                add("QXM006", a, f"{table}.{column_name}")
        elif a.kind == "change_type":
            subject = f"{table}.{a.column_name}"
            if existing(a.table) and not _safe_type_change(a.old_type, a.new_type):
                detail = f"to {(a.new_type or '?').lower()}"
                if a.old_type is None:
                    detail += " (pass existing_type= so a safe widening can be recognised)"
                add("QXM009", a, subject, detail)
            new = ColumnInfo(a.column_name or "?", a.new_type or "")
            hits.extend(_type_hits(new, table, a.line, key_rule=False))
        elif a.kind == "rename_column":
            if existing(a.table):
                add("QXM010", a, f"{table}.{a.column_name}", f"to {a.name}")
        elif a.kind == "rename_table":
            if existing(a.table):
                add("QXM011", a, table, f"to {a.name}")
        elif a.kind == "drop_column":
            if existing(a.table):
                add("QXM012", a, f"{table}.{a.column_name}")
        elif a.kind == "drop_table":
            if existing(a.table):
                add("QXM013", a, table)
        elif a.kind == "enum_add_value":
            if not a.autocommit and a.extra.get("value"):
                new_values.append(a)
        elif a.kind == "data_change" and existing(a.table):
            data.append(a)
            if a.statement in {"UPDATE", "DELETE", "WITH"} and not a.bounded:
                add("QXM021", a, table or "(query)", f"{a.statement} without WHERE")
    if ddl_line and data:
        first = data[0]
        hits.append(
            Hit(
                "QXM023",
                first.line,
                first.table or "(query)",
                f"{first.statement} after schema changes (line {ddl_line})",
            )
        )
    return [h for h in hits if h.rule_id in RULES]
