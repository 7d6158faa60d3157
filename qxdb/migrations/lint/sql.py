"""Read raw SQL (``op.execute("…")``) into :class:`~.actions.Action` values.

Statements are split and their comments dropped by a small quote-aware scanner, and the
DDL shapes the rules care about are recognised by pattern: PostgreSQL DDL is regular
enough for that, and general SQL parsers fall back to opaque commands on much of it
(``VALIDATE CONSTRAINT``, ``ALTER TYPE … ADD VALUE``). Whether an ``UPDATE``/``DELETE``
has a ``WHERE`` is decided by sqlglot (MIT) when it is installed (the ``lint`` extra), so a
``WHERE`` inside a sub-select is not mistaken for the statement's own; without it, by
looking for ``WHERE`` outside parentheses.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from qxdb.migrations.lint.actions import Action, ColumnInfo, Kind, table_key

__all__ = ["has_where", "normalize_type", "read_sql", "split_statements"]

_NAME = r'((?:"[^"]+"|[\w$]+)(?:\s*\.\s*(?:"[^"]+"|[\w$]+))?)'
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_IF_EXISTS = r"(?:IF\s+EXISTS\s+)?"
_COLUMN_STOP = re.compile(
    r"\s+(?=(?:NOT\s+NULL|NULL|DEFAULT|PRIMARY\s+KEY|REFERENCES|UNIQUE|CHECK|CONSTRAINT|"
    r"GENERATED|COLLATE)\b)",
    re.I,
)


def split_statements(text: str) -> list[str]:
    """Statements of ``text`` without comments, split on ``;`` outside quotes."""
    out: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            buf.append(" ")
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            buf.append(" ")
            continue
        if c in "'\"":
            end = i + 1
            while end < n:
                if text[end] == c:
                    if end + 1 < n and text[end + 1] == c:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            buf.append(text[i : end + 1])
            i = end + 1
            continue
        if c == "$":
            match = re.match(r"\$[A-Za-z_]*\$", text[i:])
            if match:
                tag = match.group(0)
                end = text.find(tag, i + len(tag))
                end = n if end < 0 else end + len(tag)
                buf.append(text[i:end])
                i = end
                continue
        if c == ";":
            out.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    out.append("".join(buf))
    return [" ".join(s.split()) for s in out if s.strip()]


def _top_level(text: str) -> str:
    """``text`` with everything inside parentheses and quotes blanked out."""
    depth, quote, out = 0, "", []
    for c in text:
        if quote:
            if c == quote:
                quote = ""
            continue
        if c in "'\"":
            quote = c
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
    return "".join(out)


def _split_commas(text: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@cache
def _sqlglot() -> Any:
    try:
        import sqlglot
    except ImportError:  # the lint extra is not installed: fall back to the scanner
        return None
    return sqlglot


def has_where(statement: str) -> bool:
    """Does this UPDATE/DELETE have a WHERE clause of its own?

    A ``WHERE`` outside parentheses and quotes is the statement's own. When the only
    ``WHERE`` is inside parentheses (a sub-select, a CTE), sqlglot, if installed, parses the
    statement to make sure; without it the statement counts as unbounded.
    """
    if re.search(r"\bWHERE\b", _top_level(statement), re.I):
        return True
    if not re.search(r"\bWHERE\b", statement, re.I):
        return False
    sqlglot = _sqlglot()
    if sqlglot is None:
        return False
    import logging

    from sqlglot import exp

    # sqlglot logs a warning for every statement it cannot fully parse; the library never
    # prints, so silence it for this call only.
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        parsed = sqlglot.parse_one(statement, read="postgres")
    except Exception:  # sqlglot cannot read it: the scanner's answer stands
        return False
    finally:
        logger.setLevel(level)
    if isinstance(parsed, exp.Update | exp.Delete):
        return parsed.args.get("where") is not None
    return False


_TYPE_ALIASES = [
    (r"^(INT|INT4|INTEGER)$", "INTEGER"),
    (r"^(INT2|SMALLINT)$", "SMALLINT"),
    (r"^(INT8|BIGINT)$", "BIGINT"),
    (r"^SERIAL4?$", "SERIAL"),
    (r"^SERIAL2|SMALLSERIAL$", "SMALLSERIAL"),
    (r"^SERIAL8|BIGSERIAL$", "BIGSERIAL"),
    (r"^TIMESTAMP(\s*\(\d+\))?(\s+WITHOUT\s+TIME\s+ZONE)?$", "TIMESTAMP WITHOUT TIME ZONE"),
    (
        r"^TIMESTAMP(\s*\(\d+\))?\s+WITH\s+TIME\s+ZONE$|^TIMESTAMPTZ(\s*\(\d+\))?$",
        "TIMESTAMP WITH TIME ZONE",
    ),
    (r"^(CHARACTER\s+VARYING|VARCHAR)\s*\(\s*(\d+)\s*\)$", r"VARCHAR(\2)"),
    (r"^(CHARACTER\s+VARYING|VARCHAR)$", "VARCHAR"),
    (r"^(CHARACTER|CHAR|BPCHAR|NCHAR)\s*\(\s*(\d+)\s*\)$", r"CHAR(\2)"),
    (r"^(CHARACTER|CHAR|BPCHAR|NCHAR)$", "CHAR(1)"),
]


def normalize_type(text: str) -> str:
    """One upper-case spelling per PostgreSQL type: ``int4`` -> ``INTEGER`` and so on."""
    t = " ".join(text.strip().upper().split())
    for pattern, replacement in _TYPE_ALIASES:
        if re.match(pattern, t):
            return re.sub(pattern, replacement, t)
    return t


def parse_column(text: str) -> ColumnInfo | None:
    """A column definition: ``name type [NOT NULL] [DEFAULT …] [PRIMARY KEY] …``."""
    match = re.match(_NAME + r"\s+(.*)$", text.strip(), re.S)
    if not match:
        return None
    name, rest = match.group(1).strip('"'), match.group(2)
    stop = _COLUMN_STOP.search(rest)
    type_text = normalize_type(rest[: stop.start()] if stop else rest)
    options = rest[stop.start() :] if stop else ""
    upper = options.upper()
    default = None
    found = re.search(
        r"\bDEFAULT\s+(.+?)(?=\s+(?:NOT\s+NULL|NULL|PRIMARY|REFERENCES|UNIQUE|CHECK|"
        r"CONSTRAINT|GENERATED|COLLATE)\b|$)",
        options,
        re.I | re.S,
    )
    if found:
        default = found.group(1).strip()
    # Filled row by row when added: identity, serial, and stored generated columns.
    identity = "GENERATED" in upper or "SERIAL" in type_text
    return ColumnInfo(
        name=name,
        type_text=type_text,
        primary_key="PRIMARY KEY" in upper,
        nullable=not re.search(r"\bNOT\s+NULL\b", upper) and "PRIMARY KEY" not in upper,
        default_text=default,
        identity=identity,
        foreign_key=bool(re.search(r"\bREFERENCES\b", upper)),
    )


def read_sql(text: str, line: int, *, autocommit: bool = False) -> list[Action]:
    """Every statement of ``text`` as actions, all at ``line`` (where op.execute was called)."""
    actions: list[Action] = []
    for statement in split_statements(text):
        for action in _classify(statement, line):
            action.autocommit = autocommit
            action.sql = statement
            actions.append(action)
    return actions


def _classify(s: str, line: int) -> list[Action]:
    u = s.upper()

    def one(kind: Kind, **kw: Any) -> list[Action]:
        return [Action(kind, line, **kw)]

    found = re.match(r"^SET\s+(SESSION\s+|LOCAL\s+)?LOCK_TIMEOUT\b", u)
    config = re.search(r"SET_CONFIG\s*\(\s*'LOCK_TIMEOUT'\s*,[^,]*,\s*(TRUE|FALSE)", u)
    if found or config:
        # SET LOCAL (set_config(…, true)) lasts only until the transaction ends.
        local = bool(found and found.group(1) and found.group(1).strip() == "LOCAL") or bool(
            config and config.group(1) == "TRUE"
        )
        return one("set_lock_timeout", extra={"local": "yes"} if local else {})
    m = re.match(
        r"^CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?"
        + _IF_NOT_EXISTS
        + r"(?:"
        + _NAME
        + r"\s+)?ON\s+(?:ONLY\s+)?"
        + _NAME,
        s,
        re.I,
    )
    if m:
        return one(
            "create_index",
            table=table_key(m.group(4)),
            name=m.group(3),
            concurrently=bool(m.group(2)),
        )
    m = re.match(
        r"^DROP\s+INDEX\s+(CONCURRENTLY\s+)?" + _IF_EXISTS + r"(.+?)(\s+CASCADE|\s+RESTRICT)?$",
        s,
        re.I,
    )
    if m:
        return [
            Action("drop_index", line, name=name.strip(), concurrently=bool(m.group(1)))
            for name in m.group(2).split(",")
        ]
    m = re.match(
        r"^CREATE\s+(?:UNLOGGED\s+|TEMP(?:ORARY)?\s+)?TABLE\s+"
        + _IF_NOT_EXISTS
        + _NAME
        + r"\s*\((.*)\)",
        s,
        re.I | re.S,
    )
    if m:
        return one("create_table", table=table_key(m.group(1)), columns=_table_columns(m.group(2)))
    m = re.match(
        r"^CREATE\s+(?:UNLOGGED\s+|TEMP(?:ORARY)?\s+)?TABLE\s+"
        + _IF_NOT_EXISTS
        + _NAME
        + r"\s+AS\b",
        s,
        re.I,
    )
    if m:  # CREATE TABLE … AS SELECT: a new table, filled by the query
        return one("create_table", table=table_key(m.group(1)))
    m = re.match(r"^DROP\s+TABLE\s+" + _IF_EXISTS + r"(.+?)(\s+CASCADE|\s+RESTRICT)?$", s, re.I)
    if m:
        return [Action("drop_table", line, table=table_key(t)) for t in m.group(1).split(",")]
    m = re.match(
        r"^ALTER\s+TYPE\s+" + _NAME + r"\s+ADD\s+VALUE\s+(?:IF\s+NOT\s+EXISTS\s+)?('(?:[^']|'')*')",
        s,
        re.I,
    )
    if m:
        return one("enum_add_value", name=m.group(1), extra={"value": m.group(2)})
    m = re.match(
        r"^ALTER\s+TABLE\s+" + _IF_EXISTS + r"(?:ONLY\s+)?" + _NAME + r"\s+(.*)$", s, re.I | re.S
    )
    if m:
        table = table_key(m.group(1))
        return [_alter(table, part, line) for part in _split_commas(m.group(2))]
    m = re.match(r"^(UPDATE|DELETE\s+FROM)\s+(?:ONLY\s+)?" + _NAME, s, re.I)
    if m:
        verb = "UPDATE" if m.group(1).upper() == "UPDATE" else "DELETE"
        return one("data_change", table=table_key(m.group(2)), statement=verb, bounded=has_where(s))
    m = re.match(r"^INSERT\s+INTO\s+" + _NAME, s, re.I)
    if m:
        if re.search(r"\bSELECT\b", _top_level(s), re.I) or re.search(r"\)\s*SELECT\b", u):
            return one("data_change", table=table_key(m.group(1)), statement="INSERT")
        return one("insert_rows", table=table_key(m.group(1)))
    if u.startswith("WITH ") and re.search(r"\b(UPDATE|DELETE|INSERT)\b", u):
        return one("data_change", statement="WITH", bounded=has_where(s))
    return one("other")


def _table_columns(body: str) -> tuple[ColumnInfo, ...]:
    columns: list[ColumnInfo] = []
    pk: set[str] = set()
    for part in _split_commas(body):
        head = part.split(None, 1)[0].upper() if part.split() else ""
        if head in {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "LIKE"}:
            found = re.search(r"PRIMARY\s+KEY\s*\(([^)]*)\)", part, re.I)
            if found:
                pk.update(c.strip().strip('"').lower() for c in found.group(1).split(","))
            continue
        column = parse_column(part)
        if column is not None:
            columns.append(column)
    return tuple(
        ColumnInfo(c.name, c.type_text, True, False, c.default_text, c.identity)
        if c.name.lower() in pk
        else c
        for c in columns
    )


def _alter(table: str, part: str, line: int) -> Action:
    u = part.upper()
    m = re.match(
        r"^ADD\s+(?:CONSTRAINT\s+"
        + _NAME
        + r"\s+)?(PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|EXCLUDE)\b(.*)$",
        part,
        re.I | re.S,
    )
    if m:
        kind = {
            "PRIMARY": "primary_key",
            "UNIQUE": "unique",
            "CHECK": "check",
            "FOREIGN": "foreign_key",
            "EXCLUDE": "exclude",
        }[m.group(2).split()[0].upper()]
        check = None
        if kind == "check":
            inner = re.match(r"^\s*\((.*)\)", m.group(3), re.S)
            check = inner.group(1) if inner else m.group(3)
        return Action(
            "add_constraint",
            line,
            table=table,
            name=m.group(1),
            constraint=kind,
            not_valid=bool(re.search(r"\bNOT\s+VALID\s*$", u)),
            using_index=bool(re.search(r"\bUSING\s+INDEX\s+(?!TABLESPACE)", u)),
            check_text=check,
        )
    m = re.match(r"^ADD\s+(?:COLUMN\s+)?" + _IF_NOT_EXISTS + r"(.*)$", part, re.I | re.S)
    if m:
        return Action("add_column", line, table=table, column=parse_column(m.group(1)))
    m = re.match(r"^VALIDATE\s+CONSTRAINT\s+" + _NAME, part, re.I)
    if m:
        return Action("validate_constraint", line, table=table, name=m.group(1).strip('"'))
    m = re.match(r"^DROP\s+CONSTRAINT\s+" + _IF_EXISTS + _NAME, part, re.I)
    if m:
        return Action("drop_constraint", line, table=table, name=m.group(1).strip('"'))
    m = re.match(r"^RENAME\s+TO\s+" + _NAME, part, re.I)
    if m:
        return Action("rename_table", line, table=table, name=m.group(1))
    m = re.match(
        r"^RENAME\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)" + _NAME + r"\s+TO\s+" + _NAME, part, re.I
    )
    if m:
        return Action(
            "rename_column", line, table=table, column_name=m.group(1).strip('"'), name=m.group(2)
        )
    m = re.match(r"^DROP\s+(?:COLUMN\s+)?" + _IF_EXISTS + _NAME, part, re.I)
    if m:
        return Action("drop_column", line, table=table, column_name=m.group(1).strip('"'))
    m = re.match(r"^ALTER\s+(?:COLUMN\s+)?" + _NAME + r"\s+(.*)$", part, re.I | re.S)
    if m:
        column, rest = m.group(1).strip('"'), m.group(2)
        if re.match(r"^SET\s+NOT\s+NULL$", rest, re.I):
            return Action("set_not_null", line, table=table, column_name=column)
        t = re.match(
            r"^(?:SET\s+DATA\s+)?TYPE\s+(.+?)(?:\s+USING\s+.*|\s+COLLATE\s+.*)?$", rest, re.I | re.S
        )
        if t:
            return Action(
                "change_type",
                line,
                table=table,
                column_name=column,
                new_type=normalize_type(t.group(1)),
            )
        return Action("other_alter", line, table=table, column_name=column)
    return Action("other_alter", line, table=table)
