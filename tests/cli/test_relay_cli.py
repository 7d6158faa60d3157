"""`qxdb outbox relay` as an operator runs it: bad input, unreachable broker, the SQLite
default, and a graceful stop on SIGTERM that leaves no lease behind."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from qxdb.testing.servers import free_port
from tests.cli.conftest import QXDB, run_qxdb
from tests.integration.test_relay import (
    TABLE,
    StreamScope,
    assert_exactly_once,
    delivery_ids,
    keyed_events,
    make_outbox,
    record,
    scope,
    seed,
    status_counts,
    stream_messages,
)
from tests.integration.test_relay_ordered import clean_env, relay_command

__all__ = ["scope"]


def test_help_shows_an_example() -> None:
    result = run_qxdb("outbox", "relay", "--help")
    assert result.returncode == 0
    assert "Example: qxdb outbox relay" in result.stdout


async def test_unreachable_broker_exits_3_with_one_line(tmp_path: Path) -> None:
    engine = await make_outbox(f"sqlite+aiosqlite:///{tmp_path / 'qxdb.sqlite3'}")
    await engine.dispose()
    url = f"nats://relay:hunter22@127.0.0.1:{free_port()}"
    result = run_qxdb("outbox", "relay", "--nats-url", url, "--once", cwd=tmp_path)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1 and "cannot reach NATS" in errors[0]
    assert "hunter22" not in result.stderr and "Traceback" not in result.stderr


def test_bad_subject_prefix_exits_2(tmp_path: Path) -> None:
    result = run_qxdb("outbox", "relay", "--subject-prefix", "orders.*", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("qxdb: error: invalid subject prefix")
    assert "Traceback" not in result.stderr


async def test_once_on_the_embedded_sqlite_default(tmp_path: Path, scope: StreamScope) -> None:
    engine = await make_outbox(f"sqlite+aiosqlite:///{tmp_path / 'qxdb.sqlite3'}")
    try:
        await record(engine, keyed_events(300, 7), chunk=100)
        proc = await asyncio.create_subprocess_exec(
            QXDB, "outbox", "relay", "--nats-url", scope.url, "--subject-prefix", scope.prefix,
            "--stream", scope.stream, "--once", "--json",
            cwd=tmp_path, env=clean_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "embedded SQLite default" in err.decode()
        assert json.loads(out)["published"] == 300
        messages = await stream_messages(scope, 300)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_a_signal_finishes_the_batch_releases_leases_and_says_so(
    postgres_url: str, scope: StreamScope, sig: signal.Signals, code: int
) -> None:
    engine = await make_outbox(postgres_url)
    try:
        await seed(engine, keyed_events(5_000, 100))
        proc = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, scope, "--batch-size", "200"),
            env=clean_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(500):
            counts = await status_counts(engine)
            if counts["published"] > 0:
                break
            await asyncio.sleep(0.01)
        proc.send_signal(sig)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == code, err.decode()
        done = (await status_counts(engine))["published"]
        assert done > 0
        last = err.decode().splitlines()[-1]
        assert re.fullmatch(
            rf"relay stopped by {sig.name}: published {done:,} events?, released \d+ leases?"
            r"( \(those events are pending for the next relay\))?; retried=0 dead=0 .*",
            last,
        ), last
        async with engine.connect() as conn:
            held = (
                await conn.execute(select(func.count()).where(TABLE.c.locked_by.is_not(None)))
            ).scalar_one()
        assert held == 0
        # What the relay marked is exactly what the stream holds: no batch was cut in half.
        messages = await stream_messages(scope, done)
        async with engine.connect() as conn:
            marked = (
                await conn.execute(
                    select(TABLE.c.delivery_id).where(TABLE.c.published_at.is_not(None))
                )
            ).scalars()
            assert {m[0] for m in messages} == {str(d) for d in marked}
    finally:
        await engine.dispose()


def test_unreachable_database_exits_3(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://app:topsecret77@127.0.0.1:{free_port()}/app"
    result = run_qxdb("--database-url", url, "outbox", "relay", "--once", cwd=tmp_path)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1
    assert "topsecret77" not in result.stderr and "Traceback" not in result.stderr


def test_missing_outbox_table_exits_2(tmp_path: Path) -> None:
    (tmp_path / "qxdb.sqlite3").touch()  # a database without the table (none is created)
    result = run_qxdb("outbox", "relay", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert "qxdb: error: outbox table 'qx_outbox_events' does not exist" in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--lease-seconds", "nan"),
        ("--lease-seconds", "inf"),
        ("--lease-seconds", "-1"),
        ("--poll-interval", "nan"),
        ("--batch-size", "1000000000"),
        ("--batch-size", "0"),
        ("--max-attempts", "0"),
    ],
)
def test_out_of_range_options_exit_2_before_any_database(
    tmp_path: Path, option: str, value: str
) -> None:
    result = run_qxdb("outbox", "relay", "--once", option, value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("qxdb: error: relay "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # no database file was created


@pytest.mark.postgres_only
async def test_a_table_not_yet_migrated_for_triage_is_still_relayed(
    postgres_url: str, qxdb_nats_url: str
) -> None:
    """docs/outbox.md: deploy first, migrate for triage later; the relay keeps delivering
    (and failing events) on the older table meanwhile."""
    import contextlib
    import uuid

    from nats.js.api import StreamConfig
    from sqlalchemy import text

    from qxdb.outbox import outbox_row
    from qxdb.outbox.publishers import NatsJetStreamPublisher
    from tests.integration.test_relay import OrderPlaced
    from tests.integration.test_relay_faults import blob_row

    tag = uuid.uuid4().hex[:8]
    s = StreamScope(qxdb_nats_url, f"t{tag}", f"T_{tag.upper()}")
    engine = await make_outbox(postgres_url)
    try:
        big = blob_row(OrderPlaced(seq=0).aggregate_id, 4_000)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "ALTER TABLE qx_outbox_events DROP COLUMN error_group, "
                    "DROP COLUMN replay_count, DROP COLUMN first_failed_at"
                )
            )
        # Rows written as the recorder of the previous release wrote them.
        rows = [big, *(outbox_row(e) for e in keyed_events(5, 5))]
        columns = ("id", "event_name", "payload", "occurred_at", "delivery_id")
        async with engine.begin() as conn:
            for row in rows:
                await conn.execute(
                    text(
                        "INSERT INTO qx_outbox_events (id, event_name, payload, occurred_at, "
                        "delivery_id) VALUES (:id, :event_name, CAST(:payload AS jsonb), "
                        ":occurred_at, :delivery_id)"
                    ),
                    {k: (json.dumps(row[k]) if k == "payload" else row[k]) for k in columns},
                )
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            await pub.connection.jetstream().add_stream(
                StreamConfig(name=s.stream, subjects=[f"{s.prefix}.>"], max_msg_size=2_048)
            )
        proc = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, s, "--once", "--json"),
            env=clean_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1, err.decode()  # one event went dead
        done = json.loads(out)
        assert (done["published"], done["dead"]) == (5, 1)
        async with engine.connect() as conn:
            error = (
                await conn.execute(
                    text("SELECT last_error FROM qx_outbox_events WHERE dead_at IS NOT NULL")
                )
            ).scalar_one()
        assert "max_msg_size" in error
        await stream_messages(s, 5)
    finally:
        async with NatsJetStreamPublisher(qxdb_nats_url) as pub:
            with contextlib.suppress(Exception):
                await pub.connection.jetstream().delete_stream(s.stream)
        await engine.dispose()
