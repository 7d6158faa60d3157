"""The relay's numbers from code (``OutboxRelay.metrics_snapshot()``), as a service that
embeds the relay reads them, after a real JetStream run on SQLite; and the command
refusing --metrics-port when prometheus-client is missing."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import insert

from qxdb.engine import make_session_factory
from qxdb.ids import uuid7
from qxdb.outbox import outbox_row
from qxdb.outbox.metrics import DURATION_BUCKETS
from qxdb.outbox.publishers import NatsJetStreamPublisher
from qxdb.outbox.relay import OutboxRelay, RelayConfig
from tests.integration.test_relay import (
    TABLE,
    InvoiceSent,
    StreamScope,
    keyed_events,
    make_outbox,
    stream_messages,
)
from tests.integration.test_relay_faults import blob_row


async def test_snapshot_counts_what_reached_the_stream_and_what_died(
    tmp_path: Path, qxdb_nats_url: str
) -> None:
    from nats.js.api import StreamConfig

    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"s{tag}", f"S_{tag.upper()}")
    engine = await make_outbox(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    try:
        rows = [
            blob_row(uuid7(), 4_000),  # over the stream's max_msg_size: dead at once
            *(outbox_row(e) for e in keyed_events(25, 5)),
            *(outbox_row(InvoiceSent(seq=i)) for i in range(7)),
        ]
        async with engine.begin() as conn:
            await conn.execute(insert(TABLE), rows)
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().add_stream(
                StreamConfig(name=s.stream, subjects=[f"{s.prefix}.>"], max_msg_size=2_048)
            )
            await pub.ensure_stream(s.stream, s.prefix, duplicate_window=120)
            relay = OutboxRelay(
                make_session_factory(engine),
                pub,
                subject_prefix=s.prefix,
                config=RelayConfig(batch_size=10),
            )
            before = relay.metrics_snapshot()
            assert (before.running, before.published, before.claim_seconds.count) == (False, 0, 0)
            await relay.run(once=True)
        snap = relay.metrics_snapshot()
        in_stream = len(await stream_messages(s, 32))
        assert snap.published == in_stream == 32
        orders, invoices = snap.by_event["orders.placed"], snap.by_event["billing.invoice sent"]
        assert (orders.published, orders.dead, orders.failed, orders.duplicates) == (25, 1, 0, 0)
        assert (invoices.published, invoices.dead) == (7, 0)
        assert (snap.dead, snap.failed, snap.lease_lost) == (1, 0, 0)
        assert snap.claimed == 33 and snap.batches == 4
        assert not snap.running and snap.broker_connected and snap.database_connected
        for hist in (snap.claim_seconds, snap.publish_seconds, snap.mark_seconds):
            assert len(hist.buckets) == len(DURATION_BUCKETS) + 1
            assert hist.buckets[-1] == (float("inf"), hist.count)
            assert [n for _, n in hist.buckets] == sorted(n for _, n in hist.buckets)
            assert hist.sum > 0
        # Every claim is timed, the empty last one too; publish and mark once per batch.
        assert snap.claim_seconds.count >= snap.batches
        assert snap.publish_seconds.count == snap.mark_seconds.count == snap.batches
        # A snapshot is a copy: the live numbers moving on do not change it.
        relay.metrics.event("orders.placed").published += 1
        assert snap.by_event["orders.placed"].published == 25
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            with contextlib.suppress(Exception):
                await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()


def test_metrics_port_without_prometheus_client_is_bad_usage(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "sys.argv = ['qxdb', 'outbox', 'relay', '--metrics-port', '0', '--once']\n"
        "from qxdb_cli.main import run\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "qxdb: error: --metrics-port needs prometheus-client: pip install 'qxdb[metrics]'" in (
        done.stderr
    )
    assert not (tmp_path / "qxdb.sqlite3").exists()  # refused before touching anything


async def test_healthz_is_503_when_the_loop_is_not_going_round(
    tmp_path: Path, qxdb_nats_url: str
) -> None:
    """Not started, or stuck (no round for longer than the allowed wait): 503."""
    import asyncio
    import json
    import urllib.error
    import urllib.request

    from qxdb.outbox.metrics_http import MetricsServer, healthy_within
    from qxdb.outbox.store import OutboxStore

    def get(port: int, path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    engine = await make_outbox(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    try:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            relay = OutboxRelay(make_session_factory(engine), pub, subject_prefix="h")
            server = MetricsServer(relay, OutboxStore(engine), host="127.0.0.1", port=0)
            await server.start()
            try:
                status, body = await asyncio.to_thread(get, server.port, "/healthz")
                assert (status, body["running"]) == (503, False)
                relay.metrics.running = True
                relay.metrics.beat()
                assert (await asyncio.to_thread(get, server.port, "/healthz"))[0] == 200
                relay.metrics.heartbeat -= healthy_within(relay) + 1  # a loop stuck that long
                status, body = await asyncio.to_thread(get, server.port, "/healthz")
                assert status == 503 and body["heartbeat_age_seconds"] > healthy_within(relay)
                assert await asyncio.to_thread(get, server.port, "/readyz") == (
                    200,
                    {"database": True, "broker": True},
                )
            finally:
                await server.close()
    finally:
        await engine.dispose()
