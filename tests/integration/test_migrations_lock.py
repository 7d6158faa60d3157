"""The migration lock, from code: a held lock makes ``upgrade`` wait, then give up cleanly."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from qxdb.engine import create_engine
from qxdb.migrations import MigrationLockTimeoutError, init_project, upgrade
from qxdb.migrations.lock import lock_key, sqlite_lock_path
from qxdb.settings import DatabaseSettings

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("things")
"""


@asynccontextmanager
async def _held_elsewhere(url: str) -> AsyncIterator[None]:
    """Hold the migration lock the way another deploy would."""
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    try:
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key()})
                await conn.commit()
                yield
        else:
            path = sqlite_lock_path(engine)
            assert path is not None
            fd = os.open(path, os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                os.close(fd)
    finally:
        await engine.dispose()


async def test_held_lock_makes_upgrade_wait_then_give_up(db_url: str, tmp_path: Path) -> None:
    package = f"svc_{uuid.uuid4().hex[:8]}"  # unique: the module stays in sys.modules
    (tmp_path / f"{package}.py").write_text(
        "from qxdb.mapping import make_metadata\nmetadata = make_metadata()\n"
    )
    result = init_project(metadata=f"{package}:metadata", project_root=tmp_path)
    (result.directory / "versions" / "r1_things.py").write_text(REVISION)
    settings = DatabaseSettings(url=db_url)
    said: list[str] = []

    async with _held_elsewhere(db_url):
        with pytest.raises(MigrationLockTimeoutError, match="nothing was changed"):
            await upgrade(
                config=result.config, settings=settings, lock_timeout=0.6, on_wait=said.append
            )
    assert len(said) == 1
    assert said[0].startswith("waiting for the migration lock")

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "things" not in tables
    finally:
        await engine.dispose()

    run = await upgrade(config=result.config, settings=settings, lock_timeout=5)
    assert [s.revision for s in run.steps] == ["r1"]
    assert run.after == ["r1"]
