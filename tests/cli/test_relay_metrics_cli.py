"""`qxdb outbox relay --metrics-port` scraped over HTTP during a real JetStream run, and
`--log-format json` as a log shipper reads it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from qxdb.ids import utcnow
from qxdb.outbox import outbox_row
from qxdb.testing.servers import free_port
from tests.cli.conftest import QXDB, run_qxdb
from tests.integration.own_nats import OwnNats
from tests.integration.test_relay import (
    TABLE,
    InvoiceSent,
    OrderPlaced,
    StreamScope,
    keyed_events,
    make_outbox,
    record,
    scope,
    seed,
    stream_messages,
)
from tests.integration.test_relay_ordered import clean_env, relay_command

__all__ = ["scope"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def aget(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, port, path)


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def wait_until_up(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        assert proc.returncode is None, "the relay exited before serving metrics"
        try:
            status, _ = await aget(port, "/healthz")
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the metrics endpoint never answered")


@pytest.mark.postgres_only
async def test_scraped_counters_equal_the_stream_and_lag_agrees_with_stats(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    proc: asyncio.subprocess.Process | None = None
    try:
        orders, invoices = 1_500, 700
        events = keyed_events(orders, 50) + [InvoiceSent(seq=i) for i in range(invoices)]
        await seed(engine, events)
        # One old event backing off for an hour: the oldest pending for the whole run, so
        # the lag is a fixed point in time that both the scrape and `stats` must find.
        old = outbox_row(OrderPlaced(seq=-1))
        old.update(
            recorded_at=utcnow() - timedelta(hours=1),
            next_attempt_at=utcnow() + timedelta(hours=1),
        )
        async with engine.begin() as conn:
            await conn.execute(insert(TABLE), [old])
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, scope, "--batch-size", "100", "--metrics-port", str(port)),
            env=clean_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await wait_until_up(port, proc)

        # Lag: a scrape and `qxdb outbox stats` agree within a second (plus the time
        # between the two measurements, during which the old row only grows older).
        started = time.monotonic()
        status, body = await aget(port, "/metrics")
        assert status == 200
        scraped_lag = parse(body)[("qxdb_outbox_lag_seconds", ())]
        stats = await asyncio.to_thread(
            run_qxdb, "--database-url", postgres_url, "outbox", "stats", "--json"
        )
        between = time.monotonic() - started
        assert stats.returncode == 0, stats.stderr
        stats_lag = json.loads(stats.stdout)["lag_seconds"]
        assert scraped_lag >= 3599
        assert scraped_lag - 1 <= stats_lag <= scraped_lag + between + 1

        # Drained: everything but the backing-off row is in the stream.
        for _ in range(1200):
            samples = parse((await aget(port, "/metrics"))[1])
            if samples.get(("qxdb_outbox_pending", ())) == 1:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the relay did not drain the outbox")
        in_stream = len(await stream_messages(scope, orders + invoices))
        samples = parse((await aget(port, "/metrics"))[1])
        published = "qxdb_relay_events_published_total"
        assert total(samples, published) == in_stream
        assert samples[(published, (("event", "orders.placed"),))] == orders
        assert samples[(published, (("event", "billing.invoice sent"),))] == invoices
        assert total(samples, "qxdb_relay_events_dead_total") == 0
        assert total(samples, "qxdb_relay_events_duplicate_total") == 0
        assert samples[("qxdb_relay_lease_lost_total", ())] == 0
        assert samples[("qxdb_relay_broker_connected", ())] == 1
        assert samples[("qxdb_relay_database_connected", ())] == 1
        assert samples[("qxdb_outbox_dead", ())] == 0
        pending_by_event = (("event", "orders.placed"), ("status", "pending"))
        assert samples[("qxdb_outbox_events", pending_by_event)] == 1
        for stage in ("claim", "publish", "mark"):
            name = f"qxdb_relay_{stage}_duration_seconds"
            batches = samples[(f"{name}_count", ())]
            assert batches >= (orders + invoices) // 100
            assert samples[(f"{name}_bucket", (("le", "+Inf"),))] == batches
            assert samples[(f"{name}_sum", ())] > 0

        assert (await aget(port, "/readyz"))[0] == 200
        assert (await aget(port, "/healthz"))[0] == 200
        assert (await aget(port, "/nothing-here"))[0] == 404
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        with pytest.raises(urllib.error.URLError, match="refused"):
            get(port, "/healthz")  # the endpoint goes away with the relay
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.dispose()


@pytest.mark.postgres_only
async def test_readyz_says_503_while_the_broker_is_unreachable(
    postgres_url: str, tmp_path: Path
) -> None:
    """The relay keeps running through a broker outage; /readyz says so, /healthz stays 200."""
    engine = await make_outbox(postgres_url)
    await record(engine, keyed_events(10, 2))
    nats = OwnNats(tmp_path)  # a NATS this test may stop
    proc: asyncio.subprocess.Process | None = None
    try:
        nats.start()
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            QXDB, "--database-url", postgres_url, "outbox", "relay", "--nats-url", nats.url,
            "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
            env=clean_env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until_up(port, proc)
        assert (await aget(port, "/readyz"))[0] == 200
        nats.stop()
        for _ in range(400):
            status, body = await aget(port, "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.05)
        assert status == 503 and json.loads(body) == {"database": True, "broker": False}
        assert (await aget(port, "/healthz"))[0] == 200
        samples = parse((await aget(port, "/metrics"))[1])
        assert samples[("qxdb_relay_broker_connected", ())] == 0
        assert samples[("qxdb_relay_database_connected", ())] == 1
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        nats.stop()
        await engine.dispose()


def test_a_taken_metrics_port_exits_2_with_one_line(tmp_path: Path, scope: StreamScope) -> None:
    asyncio.run(_make_sqlite_outbox(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_qxdb(
            "outbox", "relay", "--nats-url", scope.url, "--subject-prefix", scope.prefix,
            "--stream", scope.stream, "--metrics-host", "127.0.0.1",
            "--metrics-port", str(port), "--once",
            cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in errors[0]


async def _make_sqlite_outbox(tmp_path: Path, events: int = 0) -> None:
    engine = await make_outbox(f"sqlite+aiosqlite:///{tmp_path / 'qxdb.sqlite3'}")
    try:
        if events:
            await record(engine, keyed_events(events, 3))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("how", ["option", "env"])
def test_log_format_json_writes_one_object_per_line(
    tmp_path: Path, scope: StreamScope, how: str
) -> None:
    asyncio.run(_make_sqlite_outbox(tmp_path, events=40))
    args = ["--log-format", "json"] if how == "option" else []
    env = {"QX_DB__LOG_FORMAT": "json"} if how == "env" else {}
    result = run_qxdb(
        "outbox", "relay", "--nats-url", f"nats://relay:s3cret99@{scope.url.split('//')[1]}",
        "--subject-prefix", scope.prefix, "--stream", scope.stream, "--once",
        "--worker-id", "w-1", *args,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "s3cret99" not in result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines, "no log lines"
    for line in lines:
        assert {"ts", "level", "logger", "event", "worker_id"} <= line.keys()
        assert line["worker_id"] == "w-1"
    assert any("embedded SQLite default" in line["event"] for line in lines)
    last = lines[-1]
    assert last["event"].startswith("relay done: published 40 events")
    assert last["counts"]["published"] == 40


def test_an_unknown_log_format_exits_2(tmp_path: Path) -> None:
    result = run_qxdb("outbox", "relay", "--log-format", "xml", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("qxdb: error: invalid --log-format 'xml'")
