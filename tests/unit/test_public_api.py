"""The public surface is curated: every exported name resolves, and importing is light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import qxdb


def test_every_exported_name_resolves() -> None:
    for name in qxdb.__all__:
        assert getattr(qxdb, name) is not None, name


def test_all_is_sorted_and_unique() -> None:
    assert list(qxdb.__all__) == sorted(set(qxdb.__all__))


def test_importing_qxdb_and_light_parts_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys, qxdb; from qxdb import Result, Error, uuid7, request_scope, display_url\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'asyncpg', 'aiosqlite') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_type_checkers_see_every_exported_name_where_it_resolves() -> None:
    # Users' mypy --strict reads the TYPE_CHECKING block, the runtime reads _EXPORTS: a
    # name in only one of them is untyped (or missing) for one of the two.
    tree = ast.parse(Path(qxdb.__file__).read_text())
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{alias.name}: not an explicit re-export"
                    seen[alias.name] = imp.module
    assert seen == qxdb._EXPORTS
