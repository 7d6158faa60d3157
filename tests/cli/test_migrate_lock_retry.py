"""DDL that cannot take production down (issue 16, part 2).

A session sits idle in a transaction holding a lock that conflicts with the migration's
``ALTER TABLE``. The migration's statement gives up after the DDL lock timeout, so the
readers queued behind it wait at most that long; the revision is retried (each retry said
on stderr) and applies once the session lets go.
"""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import asyncpg
import pytest

from qxdb.migrations import init_project, upgrade
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import QXDB, run_qxdb
from tests.cli.migrate_support import make_project, one_error

pytestmark = pytest.mark.postgres_only

FIRST = '''
"""items"""
import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None


def upgrade() -> None:
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO items (id) SELECT generate_series(1, 100)")


def downgrade() -> None:
    op.drop_table("items")
'''

SECOND = '''
"""items.note (ACCESS EXCLUSIVE)"""
import sqlalchemy as sa
from alembic import op

revision = "r2"
down_revision = "r1"


def upgrade() -> None:
    op.add_column("items", sa.Column("note", sa.Text))


def downgrade() -> None:
    op.drop_column("items", "note")
'''

DDL_LOCK_TIMEOUT = 0.5
# Scheduling slack on a loaded 2-core machine. Without the lock timeout a reader would
# wait the whole time the blocker holds its lock (until the second retry: seconds).
SLACK = 0.9


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
def project(tmp_path: Path, postgres_url: str) -> Path:
    package = make_project(tmp_path)
    result = init_project(metadata=f"{package}.models:metadata", project_root=tmp_path)
    (result.directory / "versions" / "r1_items.py").write_text(textwrap.dedent(FIRST))
    (result.directory / "versions" / "r2_note.py").write_text(textwrap.dedent(SECOND))
    run_coro(upgrade("r1", config=result.config, settings=DatabaseSettings(url=postgres_url)))
    return tmp_path


class Readers:
    """A loop of SELECTs on the table, recording the longest one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)

    async def _loop(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                await conn.fetchval("SELECT count(*) FROM items")
                self.longest = max(self.longest, time.monotonic() - started)
                self.count += 1
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def __enter__(self) -> Readers:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


async def _hold_lock(url: str, held: threading.Event, release: threading.Event) -> None:
    """BEGIN; read the table (ACCESS SHARE); stay idle in transaction until told; commit.

    Repeatable read keeps the transaction's snapshot while it idles, so a concurrent
    index build must wait for it too.
    """
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction(isolation="repeatable_read")
        await tx.start()
        await conn.fetchval("SELECT count(*) FROM items")
        held.set()
        # The release is a threading.Event set by the test's thread: wait for it off-loop.
        await asyncio.to_thread(release.wait, 60)
        await tx.commit()
    finally:
        await conn.close()


def _blocker(url: str, release: threading.Event) -> threading.Thread:
    held = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(_hold_lock(url, held, release)), daemon=True
    )
    thread.start()
    assert held.wait(timeout=30)
    return thread


def test_up_retries_a_lock_timeout_and_readers_never_wait_long(
    project: Path, postgres_url: str
) -> None:
    url = _plain(postgres_url)
    release = threading.Event()
    blocker = _blocker(url, release)
    stderr: list[str] = []
    with Readers(url) as readers:
        proc = subprocess.Popen(
            [QXDB, "migrate", "up", "--ddl-lock-timeout", str(DDL_LOCK_TIMEOUT), "--retries", "6"],
            cwd=project,
            env=_env(postgres_url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            stderr.append(line)
            if "retry 2 of 6" in line:
                release.set()  # two attempts timed out with readers queued: let go
        stdout = proc.stdout.read()
        code = proc.wait(timeout=120)
    release.set()
    blocker.join(timeout=30)
    said = "".join(stderr)
    assert code == 0, said
    assert "upgrade   r2  items.note (ACCESS EXCLUSIVE)" in stdout
    assert "revision r2 could not take a lock in time" in said
    assert "SQLSTATE 55P03" in said and "retry 1 of 6" in said and "retry 2 of 6" in said
    assert readers.count > 10
    # The readers did queue behind the ALTER (so the bound below means something)...
    assert readers.longest > DDL_LOCK_TIMEOUT / 2, readers.longest
    # ...but never for much longer than the DDL lock timeout.
    assert readers.longest <= DDL_LOCK_TIMEOUT + 0.1 + SLACK, readers.longest


def test_no_retries_left_is_a_failure_naming_the_lock(project: Path, postgres_url: str) -> None:
    release = threading.Event()
    blocker = _blocker(_plain(postgres_url), release)
    try:
        proc = run_qxdb(
            "migrate", "up", "--ddl-lock-timeout", "0.3", "--retries", "0",
            cwd=project, url=postgres_url,
        )  # fmt: skip
    finally:
        release.set()
        blocker.join(timeout=30)
    line = one_error(proc, 1)
    assert "revision r2 (items.note (ACCESS EXCLUSIVE)) failed:" in line
    assert "lock timeout" in line and "[SQLSTATE 55P03]" in line
    assert "the database is at r1; r2 not applied" in line


def _env(url: str) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    return base | {"NO_COLOR": "1", "QX_DB__URL": url}


CONCURRENT = '''
"""index items.id concurrently, then note the lock timeout"""
from alembic import op

revision = "r2"
down_revision = "r1"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_items_id", "items", ["id"], postgresql_concurrently=True)
    op.execute("CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout")


def downgrade() -> None:
    op.drop_table("seen")
    op.drop_index("ix_items_id", "items")
'''


async def _release_once_waited_on(url: str, release: threading.Event) -> None:
    """Let the old transaction go 1 s (> the 0.3 s lock timeout) after the index waits on it."""
    conn = await asyncpg.connect(url)
    try:
        while not release.is_set():
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query ILIKE 'CREATE INDEX CONCURRENTLY%'"
            )
            if waiting:
                await asyncio.sleep(1.0)
                release.set()
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def test_a_concurrent_index_waits_for_old_transactions_past_the_lock_timeout(
    project: Path, postgres_url: str
) -> None:
    # CREATE INDEX CONCURRENTLY waits for every older transaction to end, and PostgreSQL
    # counts that wait against lock_timeout; it blocks no reader or writer meanwhile, so
    # it runs without one (and the timeout is back for what follows).
    (project / "migrations" / "versions" / "r2_note.py").write_text(textwrap.dedent(CONCURRENT))
    url = _plain(postgres_url)
    release = threading.Event()
    blocker = _blocker(url, release)
    watcher = threading.Thread(
        target=lambda: asyncio.run(_release_once_waited_on(url, release)), daemon=True
    )
    watcher.start()
    try:
        proc = run_qxdb(
            "migrate", "up", "--ddl-lock-timeout", "0.3", "--retries", "0",
            cwd=project, url=postgres_url,
        )  # fmt: skip
    finally:
        release.set()
        watcher.join(timeout=30)
        blocker.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "upgrade   r2" in proc.stdout

    async def seen() -> tuple[str, bool]:
        conn = await asyncpg.connect(url)
        try:
            setting = await conn.fetchval("SELECT lock_timeout FROM seen")
            valid = await conn.fetchval(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_items_id'::regclass"
            )
            return str(setting), bool(valid)
        finally:
            await conn.close()

    assert run_coro(seen()) == ("300ms", True)
