"""Ctrl-C under an operator's hands: a real SIGINT to the real `qxdb`, mid-work, on PostgreSQL.

Each test makes the command wait at a known point without any timing: a row the
command must change next is locked by the test (replay, purge), or a revision sleeps in
the server (migrate). The test waits until PostgreSQL shows the command waiting there,
sends SIGINT, and compares the one line the command printed with the database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qxdb.outbox.table import outbox_table
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import QXDB

pytestmark = pytest.mark.postgres_only

ROWS = 25_000


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _execute(url: str, *sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _fetchval(url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _seed_outbox(url: str, *, failed: bool) -> None:
    """ROWS rows whose ids and published_at rise with their number: failed (attempts 3)
    for a replay, or published a month ago for a purge."""
    from sqlalchemy.schema import CreateTable

    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    engine = create_engine(DatabaseSettings(), url=url)
    ddl = str(CreateTable(outbox_table()).compile(engine.sync_engine))
    run_coro(engine.dispose())
    state = (
        "3, 'broker timeout', NULL"
        if failed
        else "1, NULL, now() - interval '30 days' + g * interval '1 millisecond'"
    )
    run_coro(
        _execute(
            url,
            ddl,
            "INSERT INTO qx_outbox_events "
            "(id, event_name, payload, occurred_at, attempts, last_error, published_at) "
            "SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, "
            "'orders.placed', '{}'::jsonb, now() - interval '40 days', "
            f"{state} FROM generate_series(1, {ROWS}) AS g",
        )
    )


def _last_row_locked(url: str) -> Any:
    """Hold a lock on the row every ascending walk reaches last, in another session."""
    return _holding(
        url,
        "SELECT 1 FROM qx_outbox_events WHERE id = "
        f"('00000000-0000-7000-8000-' || lpad(to_hex({ROWS}), 12, '0'))::uuid FOR UPDATE",
    )


@contextmanager
def _holding(url: str, sql: str) -> Iterator[None]:
    """Run ``sql`` in a transaction of another session and keep it open meanwhile."""
    import asyncio
    import threading

    ready = threading.Event()
    release = threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        import asyncpg

        conn = await asyncpg.connect(_plain(url))
        try:
            async with conn.transaction():
                await conn.execute(sql)
                ready.set()
                await asyncio.to_thread(release.wait, 120)
        finally:
            await conn.close()

    def target() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=target)
    thread.start()
    ready.wait(60)
    try:
        assert not failure, failure
        yield
    finally:
        release.set()
        thread.join(60)


def _start(args: list[str], url: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    env.update({"NO_COLOR": "1", "QX_DB__URL": url, "QX_DB__STATEMENT_TIMEOUT_MS": "0"})
    return subprocess.Popen(
        [QXDB, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt_when(proc: subprocess.Popen[str], url: str, waiting: str) -> tuple[str, str]:
    """Send SIGINT once PostgreSQL shows a session of this database matching ``waiting``."""
    database = url.rsplit("/", 1)[1].split("?")[0]
    probe = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        f"'{database}' AND pid <> pg_backend_pid() AND ({waiting})"
    )
    deadline = time.monotonic() + 90
    while not run_coro(_fetchval(url, probe)):
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            pytest.fail(f"the command never reached the waiting point:\n{out}\n{err}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    return out, err


def _the_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("qxdb: interrupted")]
    assert len(lines) == 1, err
    assert err.rstrip().endswith(lines[0]), err  # and it is the last word
    return lines[0]


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def test_sigint_mid_replay_says_how_far_it_got(postgres_url: str) -> None:
    _seed_outbox(postgres_url, failed=True)
    with _last_row_locked(postgres_url):
        proc = _start(["outbox", "replay", "--status", "failed", "--yes"], postgres_url)
        _, err = _interrupt_when(proc, postgres_url, "wait_event_type = 'Lock'")
    line = _the_line(err)
    found = re.search(
        r"interrupted: ([\d,]+) of ([\d,]+) rows replayed in (\d+) committed batch(es)?; "
        r"nothing half-written; run it again to continue$",
        line,
    )
    assert found, line
    done, total, batches = _count(found[1]), _count(found[2]), int(found[3])
    assert total == ROWS
    assert 0 < done < ROWS and batches >= 1
    # The database holds exactly what the line says: whole batches, the one in flight
    # rolled back.
    replayed = run_coro(
        _fetchval(postgres_url, "SELECT count(*) FROM qx_outbox_events WHERE attempts = 0")
    )
    assert replayed == done
    # Running it again finishes the job.
    again = _start(["outbox", "replay", "--status", "failed", "--yes"], postgres_url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"replay: {ROWS - done:,} rows" in out
    left = "SELECT count(*) FROM qx_outbox_events WHERE attempts <> 0"
    assert run_coro(_fetchval(postgres_url, left)) == 0


def test_sigint_mid_purge_says_how_far_it_got(postgres_url: str) -> None:
    _seed_outbox(postgres_url, failed=False)
    with _last_row_locked(postgres_url):
        proc = _start(["outbox", "purge", "--older-than", "7d", "--yes"], postgres_url)
        _, err = _interrupt_when(proc, postgres_url, "wait_event_type = 'Lock'")
    line = _the_line(err)
    found = re.search(
        r"interrupted: ([\d,]+) of ([\d,]+) rows deleted in (\d+) committed batch(es)?; "
        r"nothing half-written; run it again to delete the rest$",
        line,
    )
    assert found, line
    done, total = _count(found[1]), _count(found[2])
    assert total == ROWS and 0 < done < ROWS
    remaining = run_coro(_fetchval(postgres_url, "SELECT count(*) FROM qx_outbox_events"))
    assert remaining == ROWS - done


REVISION = '''
"""{message}"""
from alembic import op

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
    {body}


def downgrade() -> None:
    pass
'''


def test_sigint_mid_migrate_up_names_applied_and_not_applied(
    postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "models.py").write_text("from sqlalchemy import MetaData\nmetadata = MetaData()\n")
    init = subprocess.run(
        [QXDB, "migrate", "init", "--metadata", "models:metadata", "--dialect", "postgresql"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    versions = tmp_path / "migrations" / "versions"
    steps = [
        ("a1", None, "create first", 'op.execute("CREATE TABLE first_t (n int)")'),
        ("b2", "a1", "a slow one", 'op.execute("SELECT pg_sleep(120)")'),
        ("c3", "b2", "create third", 'op.execute("CREATE TABLE third_t (n int)")'),
    ]
    for rev, down, message, body in steps:
        text = REVISION.format(rev=rev, down=repr(down), message=message, body=body)
        (versions / f"{rev}.py").write_text(textwrap.dedent(text))

    proc = _start(["migrate", "up"], postgres_url, cwd=tmp_path)
    _, err = _interrupt_when(proc, postgres_url, "query LIKE '%pg_sleep(120)%'")
    line = _the_line(err)
    found = re.search(
        r"interrupted: applied (\d) of 3 revisions(?: \(([\w, ]+)\))?; "
        r"not applied: ([\w, ]+); the database is at ([\w ()]+); run it again to continue$",
        line,
    )
    assert found, line
    applied = found[2].split(", ") if found[2] else []
    not_applied = found[3].split(", ")
    assert int(found[1]) == len(applied)
    assert applied + not_applied == ["a1", "b2", "c3"]
    # The line agrees with the database, whichever way the runner groups transactions.
    version = None
    if run_coro(_fetchval(postgres_url, "SELECT to_regclass('alembic_version') IS NOT NULL")):
        version = run_coro(_fetchval(postgres_url, "SELECT max(version_num) FROM alembic_version"))
    assert found[4] == (version or "base (no revision)")
    assert (applied[-1] if applied else None) == version
    first = run_coro(_fetchval(postgres_url, "SELECT to_regclass('first_t') IS NOT NULL"))
    assert first is ("a1" in applied)
    assert run_coro(_fetchval(postgres_url, "SELECT to_regclass('third_t')")) is None


def test_sigint_in_a_reading_command_says_nothing_changed(postgres_url: str) -> None:
    _seed_outbox(postgres_url, failed=True)
    # The reading command waits behind an exclusive lock, then is interrupted.
    with _holding(postgres_url, "LOCK TABLE qx_outbox_events IN ACCESS EXCLUSIVE MODE"):
        proc = _start(["outbox", "stats"], postgres_url)
        _, err = _interrupt_when(proc, postgres_url, "wait_event_type = 'Lock'")
    assert _the_line(err) == "qxdb: interrupted: nothing was changed"
