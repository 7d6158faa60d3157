"""Bulk changes in batches whose size follows the statement time (:class:`BatchSizer`).

The sizing itself is arithmetic (tested first); the risk is in the walk: batches of
changing sizes must still touch every selected row exactly once, whatever ties in the
walk key fall on a batch boundary, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.ids import uuid7
from qxdb.outbox import store as store_module
from qxdb.outbox.batches import BATCH_SECONDS, BatchSizer
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import outbox_table

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_the_first_batch_is_small_then_sizes_follow_the_statement_time() -> None:
    sizer = BatchSizer(10_000)
    assert sizer.size == 2_000  # measure the server before committing to 10,000 rows
    assert sizer.next(2_000, BATCH_SECONDS / 10) == 4_000  # fast: at most doubled
    assert sizer.next(4_000, BATCH_SECONDS / 10) == 8_000
    assert sizer.next(8_000, BATCH_SECONDS / 10) == 10_000  # never above the limit
    assert sizer.next(10_000, BATCH_SECONDS * 4) == 2_500  # slow: shrunk to the target
    assert sizer.next(2_500, BATCH_SECONDS) == 2_500
    assert sizer.next(2_500, 1000.0) == 100  # a stall: down to the floor, not to zero
    assert sizer.next(100, 0.0) == 100  # no measurable time: keep the size
    assert sizer.next(40, BATCH_SECONDS * 2) == 100  # a short, slow tail: floor holds


def test_a_small_limit_is_the_size_from_the_start() -> None:
    sizer = BatchSizer(3)
    assert sizer.size == 3
    assert sizer.next(3, 1000.0) == 3  # the floor never exceeds the limit
    assert sizer.next(3, 0.0001) == 3


class _Scripted(BatchSizer):
    """Sizes from a fixed list, so the walk meets many different batch boundaries."""

    sizes = (3, 7, 2, 5, 1, 4, 6, 2, 9)

    def __init__(self, limit: int, seconds: float = BATCH_SECONDS) -> None:
        super().__init__(limit, seconds)
        self._turn = 0
        self.size = min(limit, self.sizes[0])

    def next(self, rows: int, took: float) -> int:
        self._turn += 1
        self.size = min(self.limit, self.sizes[self._turn % len(self.sizes)])
        return self.size


def _rows(n: int, **state: Any) -> list[dict[str, Any]]:
    # Three rows share each timestamp: ties fall on batch boundaries of every size.
    return [
        {
            "id": uuid7(),
            "event_name": f"e.{i % 4}",
            "payload": {"i": i},
            "occurred_at": NOW - timedelta(days=30) + timedelta(minutes=i // 3),
            "delivery_id": uuid7(),
            "attempts": 1,
            "published_at": None,
            "dead_at": None,
            "last_error": None,
            **state,
        }
        for i in range(n)
    ]


async def test_changing_batch_sizes_replay_and_purge_each_row_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BatchSizer", _Scripted)
    table = outbox_table()
    published = _rows(61, published_at=NOW - timedelta(days=20))
    dead = _rows(17, dead_at=NOW - timedelta(days=20), last_error="gave up")
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(insert(table), published + dead)
    store = OutboxStore(engine, batch_size=8)

    window = OutboxSelection(
        status="published",
        since=NOW - timedelta(days=30),
        until=NOW - timedelta(days=30) + timedelta(minutes=15),  # rows 0..44
    )
    before = {r["id"]: r["delivery_id"] for r in published}
    report = await store.replay(window)
    assert report.rows == 45
    assert report.batches > 45 // 8  # sizes below the limit were used
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table))).all()
    replayed = {r.id for r in rows if r.id in before and r.published_at is None}
    assert replayed == {r["id"] for r in published[:45]}
    for r in rows:
        if r.id in replayed:
            assert r.delivery_id != before[r.id] and r.attempts == 0

    dead_report = await store.replay(OutboxSelection(status="dead"))
    assert dead_report.rows == 17

    purged = await store.purge(timedelta(days=7), now=NOW)
    assert purged.rows == 61 - 45
    async with engine.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    assert left == 45 + 17
