"""`qxdb outbox top`: one snapshot as JSON, one frame without colour, and the live view on
a pseudo-terminal, quit with q and with Ctrl-C; the sampler's publish rate, exactly."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select as sa_select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.ids import utcnow
from qxdb.outbox import outbox_row
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.top import OutboxTop
from tests.cli.conftest import QXDB, run_qxdb
from tests.integration.test_relay import TABLE, InvoiceSent, keyed_events, make_outbox, seed


async def _outbox(url: str) -> AsyncEngine:
    """30 orders and 5 invoices pending, 10 orders leased by relay-a, 4 by relay-b, one
    invoice dead."""
    engine = await make_outbox(url)
    await seed(engine, keyed_events(30, 3) + [InvoiceSent(seq=i) for i in range(5)])
    later = utcnow() + timedelta(minutes=5)
    async with engine.begin() as conn:
        ids = list((await conn.execute(sa_select(TABLE.c.id).order_by(TABLE.c.id))).scalars())
        for worker, chosen in (("relay-a", ids[:10]), ("relay-b", ids[10:14])):
            await conn.execute(
                update(TABLE)
                .where(TABLE.c.id.in_(chosen))
                .values(locked_by=worker, locked_until=later)
            )
        await conn.execute(
            update(TABLE)
            .where(TABLE.c.id == ids[-1])
            .values(dead_at=utcnow(), last_error="too large")
        )
    return engine


def _sqlite(tmp_path: Path) -> AsyncEngine:
    return asyncio.run(_outbox(f"sqlite+aiosqlite:///{tmp_path / 'qxdb.sqlite3'}"))


def test_json_is_one_snapshot_with_leases(tmp_path: Path) -> None:
    asyncio.run(_sqlite(tmp_path).dispose())
    result = run_qxdb("outbox", "top", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["stats"]["pending"] == 34 and doc["stats"]["dead"] == 1
    by_event = {e["event_name"]: e for e in doc["stats"]["by_event"]}
    assert by_event["orders.placed"]["pending"] == 30
    assert by_event["billing.invoice sent"]["dead"] == 1
    assert [(h["worker_id"], h["rows"]) for h in doc["leases"]] == [
        ("relay-a", 10),
        ("relay-b", 4),
    ]
    # Two samples an interval apart: nothing was published between them.
    assert (doc["published_per_second"], doc["published_since_last"]) == (0.0, 0)


def test_once_and_json_measure_the_rate_over_one_interval(postgres_url: str) -> None:
    """Rows published while the command runs show as a rate, not as 'no rate'."""

    async def prepare() -> None:
        engine = await _outbox(postgres_url)
        await seed(engine, keyed_events(1_000, 5))
        await engine.dispose()

    async def publish_while(proc: subprocess.Popen[str]) -> int:
        engine = await make_outbox(postgres_url)
        done = 0
        try:
            while proc.poll() is None:
                async with engine.begin() as conn:
                    one = (
                        sa_select(TABLE.c.id)
                        .where(TABLE.c.published_at.is_(None), TABLE.c.dead_at.is_(None))
                        .limit(1)
                        .scalar_subquery()
                    )
                    result = await conn.execute(
                        update(TABLE).where(TABLE.c.id == one).values(published_at=utcnow())
                    )
                    done += result.rowcount
                await asyncio.sleep(0.01)
        finally:
            await engine.dispose()
        return done

    asyncio.run(prepare())
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    env.update(QX_DB__URL=postgres_url, NO_COLOR="1")
    for flag in ("--json", "--once"):
        proc = subprocess.Popen(
            [QXDB, "outbox", "top", flag, "--interval", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        published = asyncio.run(publish_while(proc))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert published > 0
        if flag == "--json":
            doc = json.loads(out)
            assert 0 < doc["published_since_last"] <= published
            assert doc["published_per_second"] > 0
        else:
            assert re.search(r"[1-9][\d,]*/s", out), out


def test_once_with_no_color_is_plain_text(tmp_path: Path) -> None:
    asyncio.run(_sqlite(tmp_path).dispose())
    result = run_qxdb("outbox", "top", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    for shown in ("orders.placed", "billing.invoice sent", "relay-a", "relay-b", "34"):
        assert shown in result.stdout


@pytest.mark.parametrize("value", ["0", "0.1", "3601", "inf", "1e308", "nan"])
def test_bad_interval_exits_2(tmp_path: Path, value: str) -> None:
    """--once and --json wait one interval: one that never ends is refused up front."""
    result = run_qxdb("outbox", "top", "--json", "--interval", value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr


def test_missing_table_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "qxdb.sqlite3").touch()
    result = run_qxdb("outbox", "top", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert "outbox table 'qx_outbox_events' does not exist" in result.stderr


def _own_terminal() -> None:
    """In the child: a session of its own with the pty as controlling terminal, so the
    terminal turns Ctrl-C into SIGINT as a user's would."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(fd: int, needle: bytes, seen: bytearray, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return needle in seen
            if not chunk:
                break
            seen += chunk
            if seen.count(needle) >= 2:
                return True
    return seen.count(needle) >= 2


@pytest.mark.parametrize(
    ("key", "no_color"),
    [(b"q", True), (b"\x03", False), (None, True)],
    ids=["q", "ctrl-c", "sigint"],
)
def test_live_view_on_a_terminal_quits_cleanly(
    tmp_path: Path, key: bytes | None, no_color: bool
) -> None:
    asyncio.run(_sqlite(tmp_path).dispose())
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [QXDB, "outbox", "top", "--interval", "0.3"],
        cwd=tmp_path,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        preexec_fn=_own_terminal,
    )
    os.close(follower)
    seen = bytearray()
    try:
        # Two frames drawn (the second one has a rate), then the key quits.
        assert _read_until(leader, b"relay-a", seen, 60), seen.decode(errors="replace")
        if key is None:
            proc.send_signal(signal.SIGINT)
        else:
            os.write(leader, key)
        assert proc.wait(15) == 0, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "Traceback" not in text
    assert "/s" in text  # the publish rate of the second frame
    if no_color:
        # Cursor movement is what Live is; colour and bold are not allowed.
        assert "\x1b[1m" not in text and "\x1b[3" not in text


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_the_rate_counts_exactly_the_rows_published_between_samples(
    tmp_path: Path, postgres_url: str, dialect: str
) -> None:
    url = postgres_url if dialect == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    engine = await _outbox(url)
    try:
        sampler = OutboxTop(OutboxStore(engine))
        first = await sampler.sample()
        assert first.published_since_last is None
        # 20 new rows recorded; 12 of them and 7 old ones published; 1 old one dies.
        await seed(engine, keyed_events(20, 2))
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(
                        sa_select(TABLE.c.id)
                        .where(TABLE.c.published_at.is_(None), TABLE.c.dead_at.is_(None))
                        .order_by(TABLE.c.id.desc())
                    )
                ).scalars()
            )
            await conn.execute(
                update(TABLE)
                .where(TABLE.c.id.in_(ids[:12] + ids[-7:]))
                .values(published_at=utcnow())
            )
            await conn.execute(update(TABLE).where(TABLE.c.id == ids[-8]).values(dead_at=utcnow()))
            pending = (
                await conn.execute(
                    sa_select(func.count()).where(
                        TABLE.c.published_at.is_(None), TABLE.c.dead_at.is_(None)
                    )
                )
            ).scalar_one()
        second = await sampler.sample()
        assert second.published_since_last == 19
        assert second.stats.pending == pending
        assert second.published_per_second is not None and second.published_per_second > 0
        assert len(second.rate_history) == 1
        # Three new rows, none published: no rate.
        async with engine.begin() as conn:
            await conn.execute(insert(TABLE), [outbox_row(e) for e in keyed_events(3, 1)])
        third = await sampler.sample()
        assert third.published_since_last == 0
    finally:
        await engine.dispose()


def test_without_a_terminal_a_frame_is_printed_every_interval(tmp_path: Path) -> None:
    asyncio.run(_sqlite(tmp_path).dispose())
    env = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [QXDB, "outbox", "top", "--interval", "0.2"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        seen = ""
        while seen.count("relay (locked_by)") < 3:
            line = proc.stdout.readline().decode()
            assert line, "top ended early"
            seen += line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "\x1b" not in seen
    assert "/s" in seen  # frames after the first carry a rate


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_a_table_empty_at_the_first_sample_still_gets_its_rate(
    tmp_path: Path, postgres_url: str, dialect: str
) -> None:
    """--json and --once are exactly two samples: a fresh (or fully purged) outbox that
    fills and publishes between them must show it, not 0/s."""
    url = postgres_url if dialect == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    engine = await make_outbox(url)
    try:
        sampler = OutboxTop(OutboxStore(engine))
        await sampler.sample()
        await seed(engine, keyed_events(10, 2))
        async with engine.begin() as conn:
            await conn.execute(update(TABLE).values(published_at=utcnow()))
        second = await sampler.sample()
        assert second.published_since_last == 10
        assert second.published_per_second is not None and second.published_per_second > 0
    finally:
        await engine.dispose()
