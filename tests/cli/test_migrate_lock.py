"""Three deploys migrate one PostgreSQL database at the same moment."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from qxdb.migrations import init_project
from qxdb.testing.plugin import run_coro
from tests.cli.migrate_support import QXDB, make_project

FIRST = '''
"""create the log, slowly"""
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("applied_log", sa.Column("revision", sa.Text, nullable=False))
    op.execute("INSERT INTO applied_log (revision) VALUES ('a1')")
    # Keep the lock long enough for the other deploys to find it taken.
    op.execute("SELECT pg_sleep(3)")


def downgrade() -> None:
    op.drop_table("applied_log")
'''

SECOND = '''
"""items, with an index built concurrently"""
import sqlalchemy as sa
from alembic import op

revision = "b2"
down_revision = "a1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("items", sa.Column("name", sa.Text))
    op.execute("INSERT INTO applied_log (revision) VALUES ('b2')")
    with op.get_context().autocommit_block():
        op.create_index("ix_items_name", "items", ["name"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_table("items")
'''


async def _facts(url: str) -> dict[str, object]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        log = [r["revision"] for r in await conn.fetch("SELECT revision FROM applied_log")]
        version = await conn.fetchval("SELECT version_num FROM alembic_version")
        valid = await conn.fetchval(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'ix_items_name'"
        )
        return {"log": sorted(log), "version": version, "index_valid": valid}
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.postgres_only
def test_three_deploys_at_once_apply_each_revision_once(postgres_url: str, tmp_path: Path) -> None:
    package = make_project(
        tmp_path, "from qxdb.mapping import make_metadata\nmetadata = make_metadata()\n"
    )
    init_project(metadata=f"{package}.models:metadata", project_root=tmp_path)
    versions = tmp_path / "migrations" / "versions"
    (versions / "a1_create_log.py").write_text(textwrap.dedent(FIRST))
    (versions / "b2_items.py").write_text(textwrap.dedent(SECOND))

    env = {**os.environ, "QX_DB__URL": postgres_url, "NO_COLOR": "1"}
    deploys = [
        subprocess.Popen(
            [QXDB, "migrate", "up", "--lock-timeout", "60"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in deploys]

    assert [code for code, _, _ in results] == [0, 0, 0], results
    appliers = [r for r in results if "upgrade   a1" in r[1]]
    assert len(appliers) == 1, results
    assert "upgrade   b2" in appliers[0][1]
    for _, stdout, stderr in results:
        if "upgrade" not in stdout:
            assert "nothing to do: the database is at b2" in stdout
            assert "waiting for the migration lock" in stderr, stderr
        assert "Traceback" not in stderr

    facts = run_coro(_facts(postgres_url))
    assert facts == {"log": ["a1", "b2"], "version": "b2", "index_valid": True}
