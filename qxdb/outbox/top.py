"""A live view of the outbox (what ``qxdb outbox top`` shows), one sample at a time.

Each :meth:`OutboxTop.sample` reads :meth:`~qxdb.outbox.store.OutboxStore.stats` (pending,
failed and dead by event, lag: the partial pending index) plus one small statement of
its own: the relays holding leases (pending rows only, the same index), and the rows
recorded since the last sample (a range of the primary key above the last id seen). The
publish rate follows without counting published rows, which are the bulk of the table::

    published in the interval = rows recorded - growth of pending - growth of dead

so a refresh costs the same on a table of a thousand rows or of a million.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, literal, select

from qxdb.engine import connect_checked
from qxdb.ids import utcnow
from qxdb.outbox.table import pending_clause
from qxdb.types import UTCDateTime

if TYPE_CHECKING:
    from qxdb.outbox.reports import OutboxStats
    from qxdb.outbox.store import OutboxStore

__all__ = ["LeaseHolder", "OutboxTop", "TopSnapshot"]


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """A relay (its ``locked_by``) and how many pending rows it holds a live lease on."""

    worker_id: str
    rows: int
    lease_until: datetime | None


@dataclass(frozen=True, slots=True)
class TopSnapshot:
    """One refresh: the stats, the lease holders, the publish rate (None on the first
    sample, which has nothing to compare with), the recent rates (oldest first) and the
    seconds the sample took, queries included."""

    stats: OutboxStats
    leases: list[LeaseHolder]
    published_per_second: float | None
    published_since_last: int | None = None
    rate_history: list[float] = field(default_factory=list)
    sample_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["stats"] = self.stats.to_dict()
        return doc


class OutboxTop:
    """Samples one outbox table; keeps the last ``history`` rates for a sparkline."""

    def __init__(self, store: OutboxStore, *, history: int = 180) -> None:
        self.store = store
        self.rates: deque[float] = deque(maxlen=history)
        self._last: tuple[float, uuid.UUID | None, int, int] | None = None

    async def sample(self) -> TopSnapshot:
        started = time.perf_counter()
        stats = await self.store.stats()
        t = self.store.table
        last_id = self._last[1] if self._last is not None else None
        # SQLite's CURRENT_TIMESTAMP text does not compare with stored datetimes.
        now_sql: ColumnElement[Any] = (
            func.now()
            if self.store.engine.dialect.name == "postgresql"
            else literal(utcnow(), UTCDateTime())
        )
        async with connect_checked(self.store.engine) as conn:
            leases = [
                LeaseHolder(str(worker), int(rows), until)
                for worker, rows, until in await conn.execute(
                    select(
                        t.c.locked_by,
                        func.count(),
                        func.max(t.c.locked_until, type_=UTCDateTime()),
                    )
                    .where(
                        pending_clause(t),
                        t.c.locked_by.is_not(None),
                        t.c.locked_until > now_sql,
                    )
                    .group_by(t.c.locked_by)
                    .order_by(func.count().desc())
                )
            ]
            # Not max(id): PostgreSQL has no max(uuid); the primary key read backwards.
            newest = select(t.c.id).order_by(t.c.id.desc()).limit(1).scalar_subquery()
            if self._last is None:
                # The first sample only notes where the table ends (no count over it all).
                max_id, recorded = (await conn.execute(select(newest))).scalar(), 0
            else:
                # An empty table at the last sample: every row is new since.
                since = select(func.count()).select_from(t)
                if last_id is not None:
                    since = since.where(t.c.id > last_id)
                head = (await conn.execute(select(newest, since.scalar_subquery()))).one()
                max_id, recorded = head[0], int(head[1])
        now = time.monotonic()
        rate: float | None = None
        published: int | None = None
        if self._last is not None:
            then, _, pending, dead = self._last
            # A replay between samples can make this negative: not a rate.
            published = max(0, recorded - (stats.pending - pending) - (stats.dead - dead))
            rate = published / max(now - then, 1e-6)
            self.rates.append(rate)
        self._last = (now, max_id if max_id is not None else last_id, stats.pending, stats.dead)
        return TopSnapshot(
            stats=stats,
            leases=leases,
            published_per_second=rate,
            published_since_last=published,
            rate_history=list(self.rates),
            sample_seconds=time.perf_counter() - started,
        )
