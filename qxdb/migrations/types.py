"""Autogenerate and qxdb's portable types (:mod:`qxdb.types`).

Rendering: a revision says ``qxdb.types.UTCDateTime()`` and ``qxdb.types.JSONType()``
(and imports ``qxdb.types``) instead of the dialect type it happens to be generated on,
so one revision runs on PostgreSQL and on SQLite.

Comparing needs no help: Alembic compares a ``TypeDecorator`` through its implementation
and a variant through the dialect's type, so a database created from these types shows no
drift on either dialect (``tests/integration/test_migrations_drift.py`` holds us to it).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate.api import AutogenContext
from sqlalchemy import JSON, Uuid

from qxdb.types import UTCDateTime

__all__ = ["render_qxdb_type"]

_IMPORT = "import qxdb.types"


def _is_json_type(type_: Any) -> bool:
    from sqlalchemy.dialects.postgresql import JSONB

    variants = getattr(type_, "_variant_mapping", {}) or {}
    return type(type_) is JSON and isinstance(variants.get("postgresql"), JSONB)


def render_qxdb_type(type_: Any, autogen_context: AutogenContext) -> str | bool:
    """``render_item`` for types: qxdb's portable types by name, anything else by Alembic."""
    if isinstance(type_, UTCDateTime):
        name = "UTCDateTime()"
    elif _is_json_type(type_):
        name = "JSONType()"
    elif type(type_) is Uuid and type_.as_uuid and type_.native_uuid:
        name = "UUIDType()"
    else:
        return False
    autogen_context.imports.add(_IMPORT)
    return f"qxdb.types.{name}"
