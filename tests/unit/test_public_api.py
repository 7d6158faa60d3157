"""The public surface is curated: every exported name resolves, and importing is light."""

from __future__ import annotations

import subprocess
import sys

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
