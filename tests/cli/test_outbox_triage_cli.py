"""``qxdb outbox inspect --group-by`` and ``qxdb outbox replay --group`` as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select

from qxdb.engine import create_engine
from qxdb.ids import uuid7
from qxdb.outbox.fingerprint import error_fingerprint
from qxdb.outbox.table import outbox_table
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import run_qxdb
from tests.cli.test_outbox_cli import ok_json, one_error_line, qxdb

TENANT = UUID("00000000-0000-7000-8000-00000000000a")
TIMEOUT = "TimeoutError: no ack for {} after {} s"
REJECTED = "RejectedError: subject 'orders.{}' has no stream"


async def _seed(url: str) -> None:
    table = outbox_table()
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for i in range(9):
        text = TIMEOUT.format(uuid7(), i) if i < 6 else REJECTED.format(i)
        rows.append(
            {
                "id": uuid7(),
                "event_name": "orders.placed" if i % 3 else "orders.cancelled",
                "payload": {"i": i},
                "occurred_at": now,
                "delivery_id": uuid7(),
                "attempts": 10,
                "last_error": text,
                "dead_at": now,
                "tenant_id": TENANT if i % 2 else None,
            }
        )
    engine = create_engine(DatabaseSettings(), url=url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(insert(table), rows)
    finally:
        await engine.dispose()


async def _dead_errors(url: str) -> list[str]:
    table = outbox_table()
    engine = create_engine(DatabaseSettings(), url=url)
    try:
        async with engine.connect() as conn:
            query = select(table.c.last_error).where(table.c.dead_at.is_not(None))
            return sorted((await conn.execute(query)).scalars().all())
    finally:
        await engine.dispose()


def test_group_inspect_and_replay(db_url: str) -> None:
    run_coro(_seed(db_url))
    timeout = error_fingerprint(TIMEOUT.format(uuid7(), 1))
    rejected = error_fingerprint(REJECTED.format(1))

    doc = ok_json(db_url, "outbox", "inspect", "--group-by", "error")
    assert (doc["rows"], doc["group_count"], doc["group_by"]) == (9, 2, "error")
    assert [(g["fingerprint"], g["count"]) for g in doc["groups"]] == [(timeout, 6), (rejected, 3)]
    assert doc["groups"][0]["error_class"] == "TimeoutError"
    assert doc["groups"][1]["error"] == "RejectedError: subject '?' has no stream"
    assert doc["groups"][0]["sample"]["status"] == "dead"
    assert doc["selection"] == {"status": "dead"}

    by_event = ok_json(db_url, "outbox", "inspect", "--group-by", "EVENT", "--limit", "1")
    assert by_event["group_count"] == 4 and len(by_event["groups"]) == 1
    assert by_event["groups"][0]["event_name"] == "orders.placed"

    human = qxdb(db_url, "outbox", "inspect", "--group-by", "tenant", "--wide")
    assert human.returncode == 0, human.stderr
    assert timeout in human.stdout and "RejectedError: subject '?' has no stream" in human.stdout
    assert "9 dead rows in 4 groups" in human.stderr
    assert "qxdb outbox replay --group <group> --tenant <tenant>" in human.stderr

    dry = ok_json(db_url, "outbox", "replay", "--group", rejected.upper(), "--dry-run")
    assert dry["plan"]["count"] == 3 and dry["report"] is None
    assert dry["plan"]["selection"] == {"status": "dead", "group": rejected}
    assert len(run_coro(_dead_errors(db_url))) == 9

    refused = qxdb(db_url, "outbox", "replay", "--group", rejected)  # no terminal, no --yes
    one_error_line(refused, 2, "--yes")
    done = ok_json(db_url, "outbox", "replay", "--group", rejected, "--yes")
    assert done["report"]["rows"] == 3
    left = run_coro(_dead_errors(db_url))
    assert len(left) == 6 and all(e.startswith("TimeoutError") for e in left)

    shown = json.loads(
        qxdb(db_url, "outbox", "inspect", "--status", "all", "--limit", "20", "--json").stdout
    )
    replayed = [r for r in shown["rows"] if r["replay_count"] == 1]
    assert len(replayed) == 3 and all(r["first_failed_at"] for r in replayed)

    gone = ok_json(db_url, "outbox", "inspect", "--group-by", "error", "--event", "nothing")
    assert gone["groups"] == []
    quiet = qxdb(db_url, "outbox", "inspect", "--group-by", "error", "--event", "nothing")
    assert quiet.stdout.strip() == "no dead outbox rows match"


def test_bad_triage_options_exit_2(sqlite_url: str) -> None:
    run_coro(_seed(sqlite_url))
    cases: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        (("inspect", "--group-by", "kind"), ("unknown grouping 'kind'", "error, event, tenant")),
        (("inspect", "--group-by", "error", "--status", "published"), ("dead or failed",)),
        (("inspect", "--group-by", "error", "--after", str(uuid7())), ("--after",)),
        (("replay", "--group", "12345"), ("invalid failure group '12345'",)),
    ]
    for args, fragments in cases:
        one_error_line(run_qxdb("outbox", *args, url=sqlite_url), 2, *fragments)


def test_a_group_without_a_tenant_is_replayed_with_tenant_none(db_url: str) -> None:
    run_coro(_seed(db_url))  # tenant on odd rows, none on even ones
    timeout = error_fingerprint(TIMEOUT.format(uuid7(), 1))
    human = qxdb(db_url, "outbox", "inspect", "--group-by", "tenant")
    assert human.returncode == 0, human.stderr
    assert "none" in human.stdout  # what to type for the groups without a tenant
    groups = ok_json(db_url, "outbox", "inspect", "--group-by", "tenant")["groups"]
    untenanted = [g for g in groups if g["fingerprint"] == timeout and g["tenant_id"] is None]
    assert [g["count"] for g in untenanted] == [3]  # TIMEOUT rows 0, 2, 4

    dry = ok_json(db_url, "outbox", "replay", "--group", timeout, "--tenant", "none", "--dry-run")
    assert dry["plan"]["count"] == 3
    assert dry["plan"]["selection"] == {"status": "dead", "tenant_id": None, "group": timeout}
    done = ok_json(db_url, "outbox", "replay", "--group", timeout, "--tenant", "None", "--yes")
    assert done["report"]["rows"] == 3
    left = ok_json(db_url, "outbox", "inspect", "--group-by", "tenant")["groups"]
    assert all(g["tenant_id"] is not None for g in left if g["fingerprint"] == timeout)
    one_error_line(qxdb(db_url, "outbox", "replay", "--tenant", "nobody", "--yes"), 2, "tenant")
