"""`qxdb outbox relay` when things break, as an operator sees it: a broker outage on a
terminal under NO_COLOR (one line when it goes, one when it is back, nothing glued onto
the live line, no claim meanwhile), `--once` exit codes 1 and 3, a lease too long for
the existing stream's duplicate window (exit 2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.ids import uuid7
from qxdb.outbox import outbox_row
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.testing.servers import free_port
from tests.cli.conftest import run_qxdb
from tests.integration.own_nats import own_nats
from tests.integration.test_relay import (
    TABLE,
    OrderPlaced,
    StreamScope,
    assert_exactly_once,
    delivery_ids,
    keyed_events,
    make_outbox,
    record,
    seed,
    status_counts,
    stream_messages,
)
from tests.integration.test_relay_ordered import clean_env, relay_command


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return moves back to column 0
    and later characters overwrite earlier ones."""
    lines: list[str] = []
    current: list[str] = []
    col = 0
    for ch in raw:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(current).rstrip())
            current, col = [], 0
        else:
            if col < len(current):
                current[col] = ch
            else:
                current.append(ch)
            col += 1
    if current:
        lines.append("".join(current).rstrip())
    return lines


class Terminal:
    """A pseudo-terminal for a child's stderr, read in the background."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.raw = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.raw.extend(chunk)

    @property
    def text(self) -> str:
        return self.raw.decode(errors="replace")

    async def until(self, needle: str, within: float = 20) -> None:
        for _ in range(int(within / 0.05)):
            if needle in self.text:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared in:\n{self.text}")

    def close(self) -> None:
        self._reader.join(5)
        os.close(self.master)


async def published_count(engine: AsyncEngine, count: int, within: float = 30) -> None:
    for _ in range(int(within / 0.05)):
        if (await status_counts(engine))["published"] >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {count} published: {await status_counts(engine)}")


async def row_versions(engine: AsyncEngine) -> dict[uuid.UUID, tuple[str, str | None]]:
    """xmin (changes with every UPDATE, a claim or a release included) of pending rows."""
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT id, xmin::text, locked_by FROM qx_outbox_events WHERE published_at IS NULL"
        )
        return {r[0]: (r[1], r[2]) for r in rows.all()}


@pytest.mark.postgres_only
async def test_a_broker_outage_on_a_no_color_terminal(postgres_url: str, tmp_path: Path) -> None:
    engine = await make_outbox(postgres_url)
    with own_nats(tmp_path) as server:
        tag = uuid.uuid4().hex[:8]
        s = StreamScope(server.url, f"o{tag}", f"O_{tag.upper()}")
        async with NatsJetStreamPublisher(server.url) as pub:
            await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
        await record(engine, keyed_events(100, 10), chunk=20)
        term = Terminal()
        proc = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, s),  # default poll interval, batch size, lease
            env=clean_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=term.slave,
        )
        os.close(term.slave)
        try:
            await published_count(engine, 100)
            server.stop()
            # A writer commits: its NOTIFY wakes the relay, which finds the broker gone.
            await record(engine, [OrderPlaced(aggregate_id=uuid7())])
            await term.until("broker unavailable")
            before = await row_versions(engine)
            for _ in range(10):  # more writers, more NOTIFYs: still no claim
                await record(engine, keyed_events(2, 2))
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            during = await row_versions(engine)
            assert all(during[k] == v for k, v in before.items()), "rows claimed while down"
            assert all(locked is None for _, locked in during.values())
            assert len(during) == 21
            server.start()
            await term.until("broker back after")
            await published_count(engine, 121)
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 30) == 130
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            term.close()
        messages = await stream_messages(s, 121)
        assert_exactly_once(messages, await delivery_ids(engine))
    await engine.dispose()
    raw = term.text
    assert "\x1b" not in raw, "escape codes under NO_COLOR"
    lines = screen(raw)
    assert sum("broker unavailable" in line for line in lines) == 1, raw
    assert sum("broker back after" in line for line in lines) == 1, raw
    for line in lines:
        # A log line starts with its timestamp: never after the live counters.
        assert not ("published=" in line and "WARNING" in line), line
    assert lines[-1].startswith("relay stopped by SIGINT: published 121 events, released "), raw


@pytest.mark.postgres_only
async def test_once_exits_1_when_an_event_went_dead(postgres_url: str, tmp_path: Path) -> None:
    """The issue's poison: a payload under max_payload, headers pushing it over."""
    engine = await make_outbox(postgres_url)
    try:
        key = uuid7()
        poison = outbox_row(OrderPlaced(aggregate_id=key))
        poison["payload"] = {"blob": "x" * (65_516 - len('{"blob": ""}'))}
        after = [outbox_row(OrderPlaced(aggregate_id=key, seq=i)) for i in range(1, 6)]
        async with engine.begin() as conn:
            await conn.execute(insert(TABLE), [poison, *after])
        with own_nats(tmp_path, max_payload=65_536) as server:
            tag = uuid.uuid4().hex[:8]
            s = StreamScope(server.url, f"q{tag}", f"Q_{tag.upper()}")
            args = relay_command(postgres_url, s, "--ordered", "--max-attempts", "3")
            args.remove("--no-create-stream")
            result = await asyncio.create_subprocess_exec(
                *args, "--once", "--json",
                env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(result.communicate(), 60)
            assert result.returncode == 1, err.decode()
            counters = json.loads(out)
            assert (counters["published"], counters["dead"]) == (5, 1)
            assert "max_payload of 65,536 bytes" in err.decode()
            await stream_messages(s, 5)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def database_proxy(url: str) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP proxy to the database; setting the event cuts every connection and refuses
    new ones (the database as the relay sees it when the server or network goes)."""
    target = make_url(url)
    host, port = target.host or "127.0.0.1", target.port or 5432
    cut = asyncio.Event()
    live: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if cut.is_set():
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(host, port)
        live.update((writer, up_writer))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy_port = server.sockets[0].getsockname()[1]

    async def cutter() -> None:
        await cut.wait()
        server.close()
        for writer in live:
            writer.transport.abort()

    task = asyncio.create_task(cutter())
    try:
        yield proxy_port, cut
    finally:
        cut.set()
        await task


@pytest.mark.postgres_only
@pytest.mark.slow
async def test_once_exits_3_when_the_database_goes_away(
    postgres_url: str, qxdb_nats_url: str
) -> None:
    engine = await make_outbox(postgres_url)
    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"d{tag}", f"D_{tag.upper()}")
    try:
        await seed(engine, keyed_events(5_000, 100))
        async with database_proxy(postgres_url) as (port, cut):
            via_proxy = make_url(postgres_url).set(host="127.0.0.1", port=port)
            url = via_proxy.render_as_string(hide_password=False)
            args = relay_command(url, s, "--batch-size", "50", "--once")
            args.remove("--no-create-stream")
            proc = await asyncio.create_subprocess_exec(
                *args, env=clean_env(), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            await published_count(engine, 1, within=60)
            cut.set()
            _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 3, err.decode()
        errors = [x for x in err.decode().splitlines() if x.startswith("qxdb: error:")]
        assert len(errors) == 1 and "cannot connect to" in errors[0], err.decode()
        assert "Traceback" not in err.decode()
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            with contextlib.suppress(Exception):
                await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()


async def test_a_lease_too_long_for_the_existing_streams_window_exits_2(
    tmp_path: Path, qxdb_nats_url: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    await (await make_outbox(url)).dispose()
    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"w{tag}", f"W_{tag.upper()}")
    async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
        await pub.ensure_stream(s.stream, s.prefix, duplicate_window=10)
    try:
        # --duplicate-window only shapes a stream the relay creates: this one exists.
        result = run_qxdb(
            *relay_command(url, s, "--once", "--duplicate-window", "600")[1:], cwd=tmp_path
        )
        assert result.returncode == 2, result.stderr
        assert (
            "qxdb: error: a lease of 30 s is too long for the existing stream's duplicate "
            "window of 10 s" in result.stderr
        )
        # A shorter lease is fine; and a cluster is a list of servers, one of them down.
        cluster = StreamScope(f"nats://127.0.0.1:{free_port()},{qxdb_nats_url}", s.prefix, s.stream)
        ok = run_qxdb(
            *relay_command(url, cluster, "--once", "--lease-seconds", "5")[1:], cwd=tmp_path
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().delete_stream(s.stream)


async def test_a_missing_stream_with_no_create_stream_exits_2(
    tmp_path: Path, qxdb_nats_url: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.sqlite3'}"
    await (await make_outbox(url)).dispose()
    s = StreamScope(qxdb_nats_url, "nostream", f"NOPE_{uuid.uuid4().hex[:8].upper()}")
    result = run_qxdb(*relay_command(url, s, "--once")[1:], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"qxdb: error: JetStream stream {s.stream} does not exist" in result.stderr
