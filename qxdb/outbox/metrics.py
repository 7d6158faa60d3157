"""What a relay measures, as plain numbers (standard library only).

:class:`RelayMetrics` lives on every :class:`~qxdb.outbox.relay.OutboxRelay`
(``relay.metrics``); ``relay.metrics_snapshot()`` hands out a frozen copy, so a service
that embeds the relay exports the numbers its own way. ``qxdb outbox relay
--metrics-port`` serves the same snapshot as Prometheus text
(:mod:`qxdb.outbox.metrics_http`).

Recording is per batch, never per statement: a few dict increments per event and three
clock reads per batch, so the cost does not show next to one broker round trip.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

__all__ = [
    "DURATION_BUCKETS",
    "EVENT_LABEL_LIMIT",
    "OTHER_EVENTS",
    "EventTotals",
    "HistogramSnapshot",
    "RelayMetrics",
    "RelayMetricsSnapshot",
]

# Seconds; a claim or mark is a few ms, a publish of 500 events tens of ms, an outage more.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Distinct event names that get a label of their own; the rest share OTHER_EVENTS, so a
# producer that puts ids into event names cannot blow up the scraper's series count.
EVENT_LABEL_LIMIT = 200
OTHER_EVENTS = "_other"


@dataclass(slots=True)
class EventTotals:
    """Per event name: stored by the stream, already stored (duplicate), failed and
    retried later, dead."""

    published: int = 0
    duplicates: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (``+Inf`` last, as Prometheus expects)."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


class _Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def snapshot(self) -> HistogramSnapshot:
        running = 0
        buckets: list[tuple[float, int]] = []
        for bound, n in zip((*DURATION_BUCKETS, float("inf")), self.counts, strict=True):
            running += n
            buckets.append((bound, running))
        return HistogramSnapshot(tuple(buckets), self.count, self.sum)


@dataclass(frozen=True, slots=True)
class RelayMetricsSnapshot:
    """A relay's numbers at one moment.

    ``by_event`` totals count what the stream acknowledged (``published``: newly stored;
    ``duplicates``: already stored within the duplicate window), what failed and is
    retried later (``failed``) and what went dead. ``lease_lost`` counts events stored
    by the stream whose lease ran out before they were marked, plus events fenced off
    unsent. ``heartbeat_age_seconds`` is how long ago the relay loop last went round.
    """

    worker_id: str
    running: bool
    published: int
    duplicates: int
    failed: int
    dead: int
    lease_lost: int
    claimed: int
    batches: int
    by_event: dict[str, EventTotals]
    claim_seconds: HistogramSnapshot
    publish_seconds: HistogramSnapshot
    mark_seconds: HistogramSnapshot
    broker_connected: bool
    database_connected: bool
    heartbeat_age_seconds: float
    uptime_seconds: float


@dataclass(slots=True)
class RelayMetrics:
    """Live, mutable numbers of one relay (written only by the relay's own event loop)."""

    by_event: dict[str, EventTotals] = field(default_factory=dict)
    claim: _Histogram = field(default_factory=_Histogram)
    publish: _Histogram = field(default_factory=_Histogram)
    mark: _Histogram = field(default_factory=_Histogram)
    started: float = field(default_factory=time.monotonic)
    heartbeat: float = field(default_factory=time.monotonic)
    running: bool = False

    def event(self, name: str) -> EventTotals:
        totals = self.by_event.get(name)
        if totals is None:
            if len(self.by_event) >= EVENT_LABEL_LIMIT and name != OTHER_EVENTS:
                return self.event(OTHER_EVENTS)
            totals = self.by_event[name] = EventTotals()
        return totals

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def totals(self) -> EventTotals:
        total = EventTotals()
        for t in self.by_event.values():
            total.published += t.published
            total.duplicates += t.duplicates
            total.failed += t.failed
            total.dead += t.dead
        return total
