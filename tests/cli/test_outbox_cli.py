"""``qxdb outbox …`` as a user runs it: the installed command, against real SQLite and PostgreSQL.

Each database is seeded once (nine rows covering every status, three event families, two
tenants and a spread of times) and then several commands run against it.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import insert, select

from qxdb.engine import create_engine
from qxdb.ids import uuid7
from qxdb.outbox.table import outbox_table
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import run_qxdb

TENANT_A = UUID("00000000-0000-7000-8000-00000000000a")
TENANT_B = UUID("00000000-0000-7000-8000-00000000000b")


def qxdb(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_qxdb(*args, url=url, env=env)


def ok_json(url: str, *args: str) -> Any:
    done = qxdb(url, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert "database: " in done.stderr
    return json.loads(done.stdout)


def one_error_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("qxdb: error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@dataclass(frozen=True)
class Seeded:
    url: str
    now: datetime
    ids: dict[str, UUID]  # label -> row id

    def labels(self, rows: list[dict[str, Any]]) -> set[str]:
        by_id = {str(v): k for k, v in self.ids.items()}
        return {by_id[r["id"]] for r in rows}


# label: (event, status, tenant, occurred hours ago, published/dead hours ago)
ROWS: dict[str, tuple[str, str, UUID | None, float, float | None]] = {
    "placed_pending": ("orders.placed", "pending", TENANT_A, 1, None),
    "placed_failed": ("orders.placed", "failed", TENANT_A, 2, None),
    "cancelled_failed": ("orders.cancelled", "failed", TENANT_B, 3, None),
    "cancelled_published_old": ("orders.cancelled", "published", TENANT_A, 240, 240),
    "user_published_new": ("users.registered", "published", TENANT_B, 1, 1),
    "user_dead_old": ("users.registered", "dead", TENANT_A, 216, 216),
    "stock_published_old": ("stock_moved", "published", None, 480, 480),
    "stockx_pending": ("stockXmoved", "pending", None, 0.5, None),
    "refund_dead_new": ("orders.refunded", "dead", TENANT_B, 5, 4),
}


async def _seed(url: str, now: datetime) -> dict[str, UUID]:
    table = outbox_table()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    ids: dict[str, UUID] = {}
    rows = []
    for label, (event, status, tenant, occurred_h, done_h) in ROWS.items():
        ids[label] = row_id = uuid7()
        occurred = now - timedelta(hours=occurred_h)
        at = None if done_h is None else now - timedelta(hours=done_h)
        rows.append(
            {
                "id": row_id,
                "event_name": event,
                "event_version": 2 if event == "orders.placed" else 1,
                "payload": {"event_id": str(uuid7()), "event_name": event, "data": {"n": label}},
                "occurred_at": occurred,
                "tenant_id": tenant,
                "delivery_id": uuid7(),
                "ordering_key": label,
                "attempts": {"pending": 0, "failed": 2, "published": 1, "dead": 10}[status],
                "last_error": "broker timeout after 5 s"
                if status == "failed"
                else ("rejected: bad subject" if status == "dead" else None),
                "published_at": at if status == "published" else None,
                "dead_at": at if status == "dead" else None,
                "next_attempt_at": now + timedelta(minutes=5) if status == "failed" else None,
                "locked_by": "relay-1" if label == "placed_failed" else None,
                "locked_until": now + timedelta(seconds=30) if label == "placed_failed" else None,
            }
        )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(insert(table), rows)
    finally:
        await engine.dispose()
    return ids


async def _snapshot(url: str) -> dict[UUID, dict[str, Any]]:
    table = outbox_table()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(table).order_by(table.c.id))).mappings().all()
    finally:
        await engine.dispose()
    return {r["id"]: dict(r) for r in rows}


def snapshot(url: str) -> dict[UUID, dict[str, Any]]:
    return run_coro(_snapshot(url))


@pytest.fixture
def seeded(db_url: str) -> Seeded:
    now = datetime.now(UTC).replace(microsecond=0)
    return Seeded(url=db_url, now=now, ids=run_coro(_seed(db_url, now)))


@pytest.mark.slow
def test_inspect_filters_show_and_stats(seeded: Seeded) -> None:
    url = seeded.url
    since = (seeded.now - timedelta(hours=4)).isoformat()
    until = (seeded.now - timedelta(minutes=45)).isoformat().replace("+00:00", "Z")
    failed_id = str(seeded.ids["placed_failed"])
    missing = str(uuid7())
    calls: dict[str, tuple[str, ...]] = {
        "all": ("inspect", "--status", "all", "--json"),
        "pending": ("inspect", "--status", "pending", "--json"),
        "failed": ("inspect", "--status", "failed", "--json"),
        "published": ("inspect", "--status", "published", "--json"),
        "dead": ("inspect", "--status", "dead", "--json"),
        "glob": ("inspect", "--event", "orders.*", "--json"),
        "underscore": ("inspect", "--event", "stock_*", "--json"),
        "tenant": ("inspect", "--tenant", str(TENANT_B), "--json"),
        "window": ("inspect", "--since", since, "--until", until, "--json"),
        "relative": (
            "inspect",
            "--since",
            "6h",
            "-s",
            "failed",
            "--tenant",
            str(TENANT_A),
            "--json",
        ),
        "first_page": ("inspect", "--limit", "3", "--json"),
        "table": ("inspect", "--status", "failed", "--wide"),
        "show": ("show", failed_id),
        "show_row": ("show", failed_id, "--row"),
        "show_missing": ("show", missing),
        "stats": ("stats", "--json"),
    }
    sqlite = url.startswith("sqlite")
    if not sqlite:  # output shape and option parsing do not depend on the dialect
        for key in ("relative", "first_page", "table", "show_row"):
            del calls[key]
    # Read-only commands: run them side by side to keep the suite quick.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(qxdb, url, "outbox", *args) for k, args in calls.items()}
        done = {k: f.result() for k, f in futures.items()}
    for key, result in done.items():
        if key != "show_missing":
            assert result.returncode == 0, (key, result.stderr)
            assert "database: " in result.stderr

    def labels(key: str) -> set[str]:
        return seeded.labels(json.loads(done[key].stdout)["rows"])

    assert labels("all") == set(ROWS)
    assert labels("pending") == {
        "placed_pending",
        "placed_failed",
        "cancelled_failed",
        "stockx_pending",
    }
    assert labels("failed") == {"placed_failed", "cancelled_failed"}
    assert labels("published") == {
        "cancelled_published_old",
        "user_published_new",
        "stock_published_old",
    }
    assert labels("dead") == {"user_dead_old", "refund_dead_new"}
    assert labels("glob") == {
        "placed_pending",
        "placed_failed",
        "cancelled_failed",
        "cancelled_published_old",
        "refund_dead_new",
    }
    # "_" in a glob is a literal underscore, not LIKE's any-character ("stockXmoved").
    assert labels("underscore") == {"stock_published_old"}
    assert labels("tenant") == {"cancelled_failed", "user_published_new", "refund_dead_new"}
    assert labels("window") == {
        "placed_pending",
        "placed_failed",
        "cancelled_failed",
        "user_published_new",
    }
    # show: the whole envelope; --row adds the delivery state; a missing id is exit 1.
    envelope = json.loads(done["show"].stdout)
    assert envelope["event_name"] == "orders.placed"
    assert envelope["data"] == {"n": "placed_failed"}
    one_error_line(done["show_missing"], 1, missing, "no outbox row")

    stats = json.loads(done["stats"].stdout)
    assert (stats["pending"], stats["failed"], stats["published"], stats["dead"]) == (4, 2, 3, 2)
    assert stats["total"] == 9
    assert stats["published_is_estimate"] is False
    assert stats["oldest_pending_recorded_at"] is not None
    by_event = {e["event_name"]: e for e in stats["by_event"]}
    assert by_event["orders.placed"] == {
        "event_name": "orders.placed",
        "pending": 2,
        "failed": 1,
        "dead": 0,
        "published": None,
    }
    if not sqlite:
        return
    assert labels("relative") == {"placed_failed"}

    # Keyset pages: three rows, then the rest after the last id.
    first = json.loads(done["first_page"].stdout)
    assert len(first["rows"]) == 3
    assert first["next_after"] == first["rows"][-1]["id"]
    rest = ok_json(url, "outbox", "inspect", "--after", first["next_after"])
    assert seeded.labels(first["rows"] + rest["rows"]) == set(ROWS)
    assert rest["next_after"] is None

    # The human table with --wide: every column, ids whole, the error shown.
    table = done["table"].stdout
    assert failed_id in table
    for header in ("id", "event", "tenant", "occurred", "status", "tries", "last error"):
        assert header in table
    assert "broker timeout after 5 s" in table

    row = json.loads(done["show_row"].stdout)
    assert row["status"] == "failed"
    assert row["locked_by"] == "relay-1"
    assert row["payload"] == envelope


@pytest.mark.slow
def test_replay_and_purge(seeded: Seeded) -> None:
    url = seeded.url
    before = snapshot(url)

    # A dry run, and a run without a terminal and without --yes, change nothing at all.
    dry = qxdb(url, "outbox", "replay", "--status", "all", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "9 outbox rows match" in dry.stdout
    assert "nothing was changed" in dry.stderr
    one_error_line(qxdb(url, "outbox", "replay", "--status", "failed"), 2, "--yes")
    assert snapshot(url) == before

    # Replay the failed rows: pending again, fresh delivery ids, same envelopes.
    done = ok_json(url, "outbox", "replay", "--status", "failed", "--yes")
    assert done["report"]["rows"] == 2
    after = snapshot(url)
    failed = {seeded.ids["placed_failed"], seeded.ids["cancelled_failed"]}
    for row_id in failed:
        old, new = before[row_id], after[row_id]
        assert new["published_at"] is None
        assert new["dead_at"] is None
        assert new["attempts"] == 0
        assert new["last_error"] is None
        assert new["next_attempt_at"] is None
        assert new["locked_by"] is None
        assert new["locked_until"] is None
        assert new["delivery_id"] != old["delivery_id"]
        assert new["delivery_id"] is not None
        assert new["payload"] == old["payload"]  # event id included
        assert new["replay_count"] == old["replay_count"] + 1
        unchanged = {k for k in old if k not in _DELIVERY_STATE}
        assert {k: new[k] for k in unchanged} == {k: old[k] for k in unchanged}
    assert {k: v for k, v in after.items() if k not in failed} == {
        k: v for k, v in before.items() if k not in failed
    }
    assert len({r["delivery_id"] for r in after.values()}) == len(after)

    # Replay a dead row by id: back to pending as well.
    dead_id = seeded.ids["refund_dead_new"]
    ok_json(url, "outbox", "replay", "--id", str(dead_id), "--yes")
    revived = snapshot(url)[dead_id]
    assert revived["dead_at"] is None
    assert revived["attempts"] == 0

    # Purge: only rows published (here, and with --include-dead, dead) more than 7 days ago.
    before_purge = snapshot(url)
    dry = ok_json(url, "outbox", "purge", "--older-than", "7d", "--dry-run")
    assert (dry["plan"]["published"], dry["plan"]["dead"]) == (2, 0)
    assert snapshot(url) == before_purge
    purged = ok_json(url, "outbox", "purge", "--older-than", "7d", "--yes")
    assert purged["report"]["rows"] == 2
    gone = {seeded.ids["cancelled_published_old"], seeded.ids["stock_published_old"]}
    assert set(snapshot(url)) == set(before_purge) - gone
    # --include-dead also takes the dead row (9 days old); the replayed one stays.
    purged = ok_json(url, "outbox", "purge", "--older-than", "7d", "--include-dead", "--yes")
    assert purged["report"]["rows"] == 1
    remaining = snapshot(url)
    assert set(remaining) == set(before_purge) - gone - {seeded.ids["user_dead_old"]}
    assert all(
        r["published_at"] is None or r["event_name"] == "users.registered"
        for r in remaining.values()
    )


_DELIVERY_STATE = {
    "published_at",
    "attempts",
    "last_error",
    "dead_at",
    "next_attempt_at",
    "locked_until",
    "locked_by",
    "delivery_id",
    "replay_count",
    "error_group",
}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("purge", "--older-than", "7x"), ("--older-than", "7x", "7d")),
        (("purge", "--older-than", "999999999d"), ("'999999999d': that reaches before year 1",)),
        (("inspect", "--since", "999999999d"), ("'999999999d': that reaches before year 1",)),
        (("inspect", "--since", "2026-11-27T10:00:00"), ("--since", "UTC offset")),
        (("inspect", "--until", "2026-13-01"), ("--until", "no such date")),
        (("replay", "--yes"), ("say which rows",)),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    sqlite_url: str, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    one_error_line(qxdb(sqlite_url, "outbox", *args), 2, *fragments)


def test_missing_table_is_named(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.split("///", 1)[1]).touch()  # an empty database, not a missing one
    done = qxdb(db_url, "outbox", "stats", env={"QX_DB__OUTBOX_TABLE": "ops_outbox"})
    one_error_line(done, 2, "'ops_outbox'", "does not exist")
    assert "database: " in done.stderr


async def _seed_shop(url: str) -> None:
    table = outbox_table()
    engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=url)
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid7(),
            "event_name": name,
            "payload": {"event_id": str(uuid7())},
            "occurred_at": now,
            "tenant_id": TENANT_A,
            "delivery_id": uuid7(),
            "attempts": 3,
            "last_error": "broker timeout after 5 s while publishing the batch " * 2,
        }
        for name in ("acme.shop.order.placed", "acme.shop.order.paid", "Acme.Shop.Order.Refunded")
    ]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(insert(table), rows)
    finally:
        await engine.dispose()


def test_inspect_keeps_event_names_apart_and_globs_are_case_sensitive(db_url: str) -> None:
    run_coro(_seed_shop(db_url))
    # Case-sensitive globs, the same rows on both dialects.
    assert ok_json(db_url, "outbox", "inspect", "--event", "ACME.*")["rows"] == []
    assert len(ok_json(db_url, "outbox", "inspect", "--event", "acme.*")["rows"]) == 2
    assert len(ok_json(db_url, "outbox", "inspect", "--event", "?cme.*")["rows"]) == 3

    # At 80 columns a long name loses its middle, not its end: the names stay distinct.
    done = qxdb(db_url, "outbox", "inspect", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    events = [line.split()[1] for line in lines[1:]]
    assert len(set(events)) == 3, done.stdout
    assert not any(e.endswith(".…") for e in events), done.stdout


def test_show_row_includes_the_headers_sent_with_the_event(db_url: str) -> None:
    table = outbox_table()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    now = datetime.now(UTC)
    traced = {
        "id": uuid7(),
        "event_name": "orders.placed",
        "payload": {"event_id": str(uuid7())},
        "occurred_at": now,
        "recorded_at": now,
        "delivery_id": uuid7(),
        "headers": {"traceparent": parent},
    }
    bare = {**traced, "id": uuid7(), "delivery_id": uuid7()}
    del bare["headers"]  # left to the server default

    async def seed() -> None:
        engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=db_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.create_all)
                await conn.execute(insert(table), [traced])
                await conn.execute(insert(table), [bare])
        finally:
            await engine.dispose()

    run_coro(seed())
    for flag in ("--row", "--json"):
        shown = qxdb(db_url, "outbox", "show", str(traced["id"]), flag)
        assert json.loads(shown.stdout)["headers"] == {"traceparent": parent}, shown.stderr
        shown = qxdb(db_url, "outbox", "show", str(bare["id"]), flag)
        assert json.loads(shown.stdout)["headers"] == {}, shown.stderr
    # Without --row, the envelope alone, as before.
    shown = qxdb(db_url, "outbox", "show", str(traced["id"]))
    assert json.loads(shown.stdout) == traced["payload"], shown.stderr


@pytest.mark.postgres_only
def test_headers_written_by_hand_are_shown_as_stored(postgres_url: str) -> None:
    """A row whose headers are not an object (an UPDATE by hand) is shown, not a crash
    of the whole listing."""
    from sqlalchemy import text

    table = outbox_table()
    now = datetime.now(UTC)
    row = {
        "id": uuid7(),
        "event_name": "orders.placed",
        "payload": {"event_id": str(uuid7())},
        "occurred_at": now,
        "delivery_id": uuid7(),
    }

    async def seed() -> None:
        engine = create_engine(DatabaseSettings(statement_timeout_ms=None), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.create_all)
                await conn.execute(insert(table), [row])
                await conn.execute(text("UPDATE qx_outbox_events SET headers = '\"x\"'"))
        finally:
            await engine.dispose()

    run_coro(seed())
    shown = ok_json(postgres_url, "outbox", "show", str(row["id"]))
    assert shown["headers"] == "x"
    listed = ok_json(postgres_url, "outbox", "inspect")
    assert [r["headers"] for r in listed["rows"]] == ["x"]
