"""One batch of a bulk change to the outbox: the statements behind replay and purge.

A bulk change walks its rows in ``(key, id)`` order, one batch per short transaction;
:func:`walk_column` picks a key whose index turns every batch into an index range. On
PostgreSQL each batch is a single statement (a CTE picks the rows, the ``UPDATE`` or
``DELETE`` re-checks the condition, only counts and the position to continue from come
back); on SQLite the ids are read first and changed with ``executemany`` / ``IN``.

:class:`BatchSizer` keeps each statement near :data:`BATCH_SECONDS`: a batch holds its
rows' locks until it commits (a relay or a writer waits on them), and on a slow or busy
server 10,000 rows can take well over half a second.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Executable,
    Table,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from qxdb.ids import uuid7
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.table import replay_marks

__all__ = [
    "BATCH_SECONDS",
    "CLEARED",
    "SERVER_UUID7",
    "BatchSizer",
    "delete_batch",
    "replay_batch",
    "rows_after",
    "timed_rowcount",
    "walk_column",
]

# What a replay resets; the delivery id is set apart (a new one per row).
CLEARED: dict[str, Any] = {
    "published_at": None,
    "attempts": 0,
    "last_error": None,
    "dead_at": None,
    "next_attempt_at": None,
    "locked_until": None,
    "locked_by": None,
}

# A UUID v7 made by the server (PostgreSQL 13+): a random v4 whose first 48 bits are
# replaced by the Unix time in milliseconds and whose version nibble is set to 7.
SERVER_UUID7 = literal_column(
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) "
    "from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid",
    type_=Uuid(),
)


# How long one batch statement should take. Fixed costs per batch (a round trip and a
# commit) are a few milliseconds, so at this length they cost a few percent of throughput.
BATCH_SECONDS = 0.2
_FIRST_BATCH = 2_000  # rows: the first batch measures the server before sizing up
_MIN_BATCH = 100


class BatchSizer:
    """The size of the next batch: at most ``limit`` rows, grown or shrunk by how long the
    previous statement took against ``seconds`` (at most doubled per batch)."""

    def __init__(self, limit: int, seconds: float = BATCH_SECONDS) -> None:
        self.limit = limit
        self.seconds = seconds
        self.size = min(limit, _FIRST_BATCH)

    def next(self, rows: int, took: float) -> int:
        """Record a batch of ``rows`` that took ``took`` seconds; the size of the next one."""
        if rows >= self.size and took > 0:
            scaled = int(self.size * min(2.0, self.seconds / took))
            self.size = max(min(_MIN_BATCH, self.limit), min(self.limit, scaled))
        elif took > self.seconds:  # a short batch (the tail) that was still slow
            self.size = max(min(_MIN_BATCH, self.limit), int(self.size * self.seconds / took))
        return self.size


def walk_column(table: Table, selection: OutboxSelection) -> ColumnElement[Any]:
    """The column a bulk change walks the selection by, so each batch is an index range.

    Walking by id alone, a window of old rows would make the first batch read the
    primary key from the very start (ids and occurred_at correlate; the planner does not
    know it). A window walks ``occurred_at``, dead rows their partial ``dead_at`` index.
    """
    if selection.since is not None or selection.until is not None:
        return table.c.occurred_at
    if selection.status == "dead":
        return table.c.dead_at
    return table.c.id


def rows_after(key: ColumnElement[Any], id_col: ColumnElement[Any], k: Any, i: UUID) -> Any:
    """Rows after ``(k, i)`` in ``(key, id)`` order, with a range bound on ``key``.

    ``key >= k AND (key > k OR id > i)`` lets the index serve the range; the equivalent
    ``key > k OR (key = k AND id > i)`` is not an index range and reads far more.
    """
    if key is id_col:
        return id_col > i
    return (key >= k) & ((key > k) | (id_col > i))


def picked_by_id(t: Table, ids: ColumnElement[Any], at: ColumnElement[Any]) -> list[Any]:
    """The rows a CTE picked, for the UPDATE or DELETE that follows it (PostgreSQL): an id
    array (primary-key probes) within the picked rows' ``recorded_at`` range.

    As an array, not ``IN (SELECT …)``: with IN the planner hashed every row of the
    selection each batch. The range lets a partitioned outbox prune to the partitions
    the batch lies in (an id alone is probed in every partition); on a plain table it is
    one more index condition.
    """
    return [
        t.c.id == any_(func.array(select(ids).scalar_subquery())),
        t.c.recorded_at >= select(func.min(at)).scalar_subquery(),
        t.c.recorded_at <= select(func.max(at)).scalar_subquery(),
    ]


async def replay_batch(
    conn: AsyncConnection,
    t: Table,
    key: ColumnElement[Any],
    where: ColumnElement[bool],
    last: tuple[Any, UUID] | None,
    size: int,
) -> tuple[int, int, tuple[Any, UUID] | None, float]:
    """Reset the next batch after ``last``: (rows changed, rows picked, new last, seconds)."""
    cleared = {**CLEARED, **replay_marks(t)}
    batch = (
        select(t.c.id.label("rid"), key.label("k"), t.c.recorded_at.label("at"))
        .where(where)
        .order_by(key, t.c.id)
        .limit(size)
    )
    if last is not None:
        batch = batch.where(rows_after(key, t.c.id, *last))
    started = time.perf_counter()
    if conn.dialect.name == "postgresql":
        # One statement, no ids over the wire: the CTE picks the batch, the UPDATE finds
        # it (picked_by_id), re-checks the selection and makes each row a new UUID v7 on
        # the server. Joined to the CTE instead, the planner misjudged its size and hashed
        # every row of the selection each batch (a third of the statement on a
        # 100,000-row window).
        picked_rows = batch.cte("batch")
        changed_rows = (
            update(t)
            .where(*picked_by_id(t, picked_rows.c.rid, picked_rows.c.at), where)
            .values(**cleared, delivery_id=SERVER_UUID7)
            .returning(t.c.id)
            .cte("changed")
        )
        tail = (
            select(picked_rows.c.rid, picked_rows.c.k)
            .order_by(picked_rows.c.k.desc(), picked_rows.c.rid.desc())
            .limit(1)
            .subquery("tail")
        )
        stmt = select(
            select(func.count()).select_from(changed_rows).scalar_subquery(),
            select(func.count()).select_from(picked_rows).scalar_subquery(),
            tail.c.rid,
            tail.c.k,
        ).select_from(tail)
        found = (await conn.execute(stmt)).first()
        took = time.perf_counter() - started
        if found is None:
            return 0, 0, last, took
        return int(found[0]), int(found[1]), (found[3], found[2]), took
    picked = (await conn.execute(batch)).all()
    if not picked:
        return 0, 0, last, time.perf_counter() - started
    reset = (
        update(t)
        .where(t.c.id == bindparam("b_id"), where)
        .values(**cleared, delivery_id=bindparam("b_did"))
    )
    params = [{"b_id": r[0], "b_did": uuid7()} for r in picked]
    changed, _ = await timed_rowcount(conn, reset, params)
    return changed, len(picked), (picked[-1][1], picked[-1][0]), time.perf_counter() - started


async def delete_batch(
    conn: AsyncConnection,
    t: Table,
    key: ColumnElement[Any],
    where: ColumnElement[bool],
    floor: datetime | None,
    size: int,
) -> tuple[int, datetime | None, float]:
    """Delete the next batch at or above ``floor``: (rows, new floor, seconds)."""
    doomed = select(t.c.id, key, t.c.recorded_at.label("at")).where(where).order_by(key).limit(size)
    if floor is not None:
        doomed = doomed.where(key >= floor)
    started = time.perf_counter()
    if conn.dialect.name == "postgresql":
        # One statement, no ids over the wire: the CTE picks the batch, the DELETE
        # re-checks the condition, and only the count and the new floor come back.
        picked = doomed.cte("doomed")
        gone = (
            delete(t)
            .where(*picked_by_id(t, picked.c.id, picked.c.at), where)
            .returning(key.label("k"))
            .cte("gone")
        )
        count, top = (await conn.execute(select(func.count(), func.max(gone.c.k)))).one()
        return int(count), top, time.perf_counter() - started
    found = (await conn.execute(doomed)).all()
    if not found:
        return 0, floor, time.perf_counter() - started
    removed, _ = await timed_rowcount(
        conn, delete(t).where(t.c.id.in_([r[0] for r in found]), where)
    )
    return removed, found[-1][1], time.perf_counter() - started


async def timed_rowcount(
    conn: AsyncConnection, stmt: Executable, params: list[dict[str, Any]] | None = None
) -> tuple[int, float]:
    started = time.perf_counter()
    result: CursorResult[Any] = await (
        conn.execute(stmt, params) if params is not None else conn.execute(stmt)
    )
    took = time.perf_counter() - started
    # executemany on SQLite reports the sum of the rows each statement changed.
    return int(result.rowcount), took
