"""``OutboxStore`` on SQLite and PostgreSQL: batching edges the command tests do not reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.durations import format_duration, parse_duration, parse_instant, parse_timestamp
from qxdb.errors import ConfigurationError, NotFoundError, ValidationError
from qxdb.ids import uuid7
from qxdb.outbox.selection import OutboxSelection, glob_to_like
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import outbox_table
from qxdb.types import UUIDType

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _row(i: int, **state: Any) -> dict[str, Any]:
    # Rows come in pairs that share one timestamp, so every walk meets ties.
    at = NOW - timedelta(days=30) + timedelta(hours=i // 2)
    return {
        "id": uuid7(),
        "event_name": f"e.{i % 3}" if i % 7 else "odd%name_",
        "payload": {"event_id": str(uuid7()), "i": i},
        "occurred_at": at,
        "delivery_id": uuid7(),
        "published_at": None,
        "dead_at": None,
        "last_error": None,
        "attempts": 0,
        **state,
    }


async def _table(engine: AsyncEngine, rows: list[dict[str, Any]]) -> Table:
    table = outbox_table()
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(insert(table), rows)
    return table


async def _all(engine: AsyncEngine, table: Table) -> dict[Any, Any]:
    async with engine.connect() as conn:
        return {r.id: r for r in (await conn.execute(select(table))).all()}


async def test_batched_replay_and_purge_walk_past_ties(engine: AsyncEngine) -> None:
    rows = [
        _row(i, published_at=NOW - timedelta(days=20) + timedelta(hours=i // 4)) for i in range(23)
    ]
    rows += [_row(100 + i, dead_at=NOW - timedelta(days=15), last_error="x") for i in range(7)]
    rows += [_row(200 + i, last_error="timeout", attempts=3) for i in range(5)]
    table = await _table(engine, rows)
    store = OutboxStore(engine, batch_size=3)
    seen: list[tuple[int, int]] = []

    window = OutboxSelection(
        status="published", since=NOW - timedelta(days=30), until=NOW - timedelta(days=29, hours=16)
    )
    plan = await store.plan_replay(window)
    assert plan.count == 16  # rows 0..15: eight hours, two rows an hour
    report = await store.replay(window, progress=lambda done, total: seen.append((done, total)))
    assert report.rows == 16
    assert report.batches == 6
    assert seen[-1] == (16, 16)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    dead = await store.replay(OutboxSelection(status="dead"))
    assert dead.rows == 7
    after = await _all(engine, table)
    assert sum(r.published_at is None and r.dead_at is None for r in after.values()) == 16 + 7 + 5

    stats = await store.stats(exact=True)
    assert (stats.pending, stats.failed, stats.published, stats.dead) == (28, 5, 7, 0)
    assert sum(e.published or 0 for e in stats.by_event) == 7

    purge_plan = await store.plan_purge(timedelta(days=7), now=NOW)
    assert (purge_plan.published, purge_plan.dead) == (23 - 16, 0)
    purged = await store.purge(timedelta(days=7), now=NOW)
    assert purged.rows == 7
    assert len(await _all(engine, table)) == len(rows) - 7

    # Dead rows go only with include_dead, and only when dead long enough.
    dead_rows = [_row(300 + i, dead_at=NOW - timedelta(days=9), last_error="x") for i in range(4)]
    async with engine.begin() as conn:
        await conn.execute(insert(table), dead_rows)
    assert (await store.purge(timedelta(days=7), now=NOW)).rows == 0
    assert (await store.purge(timedelta(days=10), include_dead=True, now=NOW)).rows == 0
    assert (await store.purge(timedelta(days=7), include_dead=True, now=NOW)).rows == 4
    with pytest.raises(ValidationError, match="timezone-aware"):
        await store.purge(timedelta(days=7), now=NOW.replace(tzinfo=None))
    assert len(await _all(engine, table)) == len(rows) - 7


async def test_reads_and_errors(engine: AsyncEngine) -> None:
    rows = [_row(i) for i in range(8)]
    await _table(engine, rows)
    store = OutboxStore(engine)
    odd = await store.list_rows(OutboxSelection(event="odd%name_"))
    assert [r.payload["i"] for r in odd.rows] == [0, 7]
    # "%" and "_" of a glob are literal characters, not LIKE wildcards.
    assert (await store.count(OutboxSelection(event="odd%name*"))) == 2
    assert (await store.count(OutboxSelection(event="odd_name*"))) == 0
    assert (await store.count(OutboxSelection(event="e.*"))) == 6
    assert glob_to_like("a_b%c\\*?") == "a\\_b\\%c\\\\%_"

    page = await store.list_rows(OutboxSelection(), limit=5)
    rest = await store.list_rows(OutboxSelection(), limit=5, after=page.next_after)
    assert [r.id for r in page.rows + rest.rows] == sorted(r["id"] for r in rows)
    assert rest.next_after is None

    # A window pages by (occurred_at, id): pairs of rows share a timestamp, pages of 3 split them.
    window = OutboxSelection(since=NOW - timedelta(days=30), until=NOW)
    seen, after = [], None
    while True:
        page = await store.list_rows(window, limit=3, after=after)
        seen += [r.id for r in page.rows]
        if (after := page.next_after) is None:
            break
    assert sorted(seen) == sorted(r["id"] for r in rows)
    assert len(seen) == len(set(seen))
    with pytest.raises(ValidationError, match="start again"):
        await store.list_rows(window, after=uuid7())

    found = await store.get(rows[3]["id"])
    assert found.value.event_id == rows[3]["payload"]["event_id"]
    missing = await store.get(uuid7())
    assert missing.is_failure
    assert isinstance(missing.error, NotFoundError)

    reference = Table(
        "legacy_outbox",
        MetaData(),
        Column("id", UUIDType(), primary_key=True),
        Column("event_name", String(255)),
        Column("attempts", Integer),
    )
    async with engine.begin() as conn:
        await conn.run_sync(reference.metadata.create_all)
    with pytest.raises(ConfigurationError, match=r"lacks columns .*delivery_id"):
        await OutboxStore(engine, "legacy_outbox").count(OutboxSelection())
    with pytest.raises(ConfigurationError, match="'nowhere' does not exist"):
        await OutboxStore(engine, "nowhere").stats()


def test_durations_are_strict() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert format_duration(timedelta(days=7, minutes=5)) == "1w5m"
    for bad in ("", "7", "d", "7 d", "-1d", "1.5h", "1m1h", "1h1h", "7days", "P7D"):
        with pytest.raises(ValidationError):
            parse_duration(bad)
    assert parse_timestamp("2026-11-27T10:00:00+02:00") == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert parse_timestamp("2026-11-27") == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_instant("2h", now=NOW) == NOW - timedelta(hours=2)
    for bad in ("2026-11-27T10:00:00", "2026-02-30", "tomorrow", "1.5h", "27/11/2026"):
        with pytest.raises(ValidationError):
            parse_instant(bad, now=NOW)
    with pytest.raises(ValidationError, match="empty window"):
        OutboxSelection(since=NOW, until=NOW)


async def test_selection_edges_alike_on_both_dialects(engine: AsyncEngine) -> None:
    rows = [_row(i) for i in range(6)]
    rows += [
        {**_row(10), "event_name": "shop.order.placed"},
        {**_row(11), "event_name": "Shop.Order.paid"},
        {**_row(12), "event_name": "shop[x].a"},
    ]
    await _table(engine, rows)
    store = OutboxStore(engine)
    # Globs are case-sensitive on both dialects (SQLite's LIKE ignores ASCII case).
    assert await store.count(OutboxSelection(event="SHOP.*")) == 0
    assert await store.count(OutboxSelection(event="shop.*")) == 1
    assert await store.count(OutboxSelection(event="Shop.*")) == 1
    assert await store.count(OutboxSelection(event="?hop.*")) == 2
    # "[" is a literal character of a glob, not a GLOB character class.
    assert await store.count(OutboxSelection(event="shop[x]*")) == 1
    assert await store.count(OutboxSelection(event="shop[xy]*")) == 0
    assert await store.count(OutboxSelection(event="odd%name*")) == 1

    # More ids than a statement has parameters (asyncpg 32,767; SQLite 32,766): one
    # bound parameter, on both dialects; two selections of different ids share the
    # compiled statement but not their values.
    wanted = [rows[0]["id"], rows[4]["id"]]
    many = OutboxSelection(ids=(*wanted, *(uuid7() for _ in range(40_000))))
    assert await store.count(many) == 2
    assert await store.count(OutboxSelection(ids=(rows[1]["id"],))) == 1
    assert (await store.plan_replay(many, sample=1000)).count == 2
    assert (await store.replay(many)).rows == 2
    listed = await store.list_rows(OutboxSelection(ids=tuple(wanted)))
    assert sorted(r.id for r in listed.rows) == sorted(wanted)

    for bad in (-1, 1001, True, "5", 2.0):
        with pytest.raises(ValidationError, match="sample"):
            await store.plan_replay(OutboxSelection(), sample=bad)  # type: ignore[arg-type]
    assert (await store.plan_replay(OutboxSelection(), sample=0)).sample == []
    for wrong in (-5, True, "3"):
        with pytest.raises(ValidationError, match="expected"):
            await store.replay(many, expected=wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("since", datetime.fromisoformat("0001-01-01T00:00+14:00")),
        ("until", datetime.fromisoformat("9999-12-31T23:59-14:00")),
        ("since", datetime(2026, 1, 1)),  # naive
    ],
)
def test_selection_window_outside_utc_is_a_validation_error(field: str, value: datetime) -> None:
    with pytest.raises(ValidationError, match=field):
        OutboxSelection(**{field: value})  # type: ignore[arg-type]
