"""Autogenerate's differences, said in words: what ``qxdb migrate check`` reports.

Alembic hands back tuples such as ``("modify_type", None, "orders", "note", {...},
VARCHAR(200), String(300))``; :func:`describe` turns each into a :class:`Difference`
with a sentence a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Dialect

__all__ = ["Difference", "describe", "flatten"]

_IN_MODELS = "is in the models but not in the database"
_IN_DATABASE = "is in the database but not in the models"


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    table: str | None
    column: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flatten(diffs: list[Any]) -> list[tuple[Any, ...]]:
    """Alembic groups the changes of one column in a nested list; undo that."""
    flat: list[tuple[Any, ...]] = []
    for diff in diffs:
        if isinstance(diff, list):
            flat.extend(tuple(d) for d in diff)
        else:
            flat.append(tuple(diff))
    return flat


def describe(diff: tuple[Any, ...], dialect: Dialect | None = None) -> Difference:
    kind = str(diff[0])
    describer = _DESCRIBERS.get(kind)
    if describer is None:
        return Difference(kind, None, None, f"{kind.replace('_', ' ')}: {diff[1:]!r}")
    return describer(kind, diff, dialect)


def _qualified(schema: str | None, table: str) -> str:
    return f"{schema}.{table}" if schema else table


def _table(kind: str, diff: tuple[Any, ...], _dialect: Dialect | None) -> Difference:
    table = diff[1]
    name = _qualified(table.schema, table.name)
    where = _IN_MODELS if kind == "add_table" else _IN_DATABASE
    return Difference(kind, name, None, f"table {name} {where}")


def _column(kind: str, diff: tuple[Any, ...], _dialect: Dialect | None) -> Difference:
    _, schema, table, column = diff[:4]
    name = _qualified(schema, table)
    where = _IN_MODELS if kind == "add_column" else _IN_DATABASE
    return Difference(kind, name, column.name, f"column {name}.{column.name} {where}")


def _type_text(type_: Any, dialect: Dialect | None) -> str:
    if dialect is not None:
        try:
            return str(type_.compile(dialect=dialect))
        except Exception:  # a type the dialect cannot render: fall back to its generic name
            pass
    return str(type_)


def _default_text(default: Any) -> str:
    if default is None:
        return "none"
    text = getattr(default, "arg", default)
    return repr(str(getattr(text, "text", text)))


def _modify(kind: str, diff: tuple[Any, ...], dialect: Dialect | None) -> Difference:
    _, schema, table, column, _existing, in_db, in_models = diff[:7]
    name = _qualified(schema, table)
    where = f"column {name}.{column}"
    if kind == "modify_type":
        detail = (
            f"type is {_type_text(in_db, dialect)} in the database, "
            f"{_type_text(in_models, dialect)} in the models"
        )
    elif kind == "modify_nullable":
        detail = (
            f"{'NULL' if in_db else 'NOT NULL'} in the database, "
            f"{'NULL' if in_models else 'NOT NULL'} in the models"
        )
    elif kind == "modify_default":
        detail = (
            f"server default is {_default_text(in_db)} in the database, "
            f"{_default_text(in_models)} in the models"
        )
    else:
        detail = f"{kind.removeprefix('modify_')} is {in_db!r} in the database, {in_models!r} in the models"
    return Difference(kind, name, column, f"{where}: {detail}")


def _index(kind: str, diff: tuple[Any, ...], _dialect: Dialect | None) -> Difference:
    index = diff[1]
    table = _qualified(index.table.schema, index.table.name) if index.table is not None else None
    columns = ", ".join(str(getattr(c, "name", c)) for c in index.expressions)
    where = _IN_MODELS if kind == "add_index" else _IN_DATABASE
    unique = "unique index" if index.unique else "index"
    return Difference(kind, table, None, f"{unique} {index.name} on {table} ({columns}) {where}")


def _constraint(kind: str, diff: tuple[Any, ...], _dialect: Dialect | None) -> Difference:
    constraint = diff[1]
    table_obj = getattr(constraint, "table", None)
    table = _qualified(table_obj.schema, table_obj.name) if table_obj is not None else None
    label = {
        "UniqueConstraint": "unique constraint",
        "ForeignKeyConstraint": "foreign key",
        "CheckConstraint": "check constraint",
    }.get(type(constraint).__name__, "constraint")
    columns = ", ".join(c.name for c in getattr(constraint, "columns", ()))
    where = _IN_MODELS if kind.startswith("add") else _IN_DATABASE
    name = constraint.name or "(unnamed)"
    return Difference(kind, table, None, f"{label} {name} on {table} ({columns}) {where}")


_Describer = Callable[[str, tuple[Any, ...], Dialect | None], Difference]
_DESCRIBERS: dict[str, _Describer] = {
    "add_table": _table,
    "remove_table": _table,
    "add_column": _column,
    "remove_column": _column,
    "modify_type": _modify,
    "modify_nullable": _modify,
    "modify_default": _modify,
    "modify_comment": _modify,
    "add_index": _index,
    "remove_index": _index,
    "add_constraint": _constraint,
    "remove_constraint": _constraint,
    "add_fk": _constraint,
    "remove_fk": _constraint,
}
