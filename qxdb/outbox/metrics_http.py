"""Prometheus exposition and health endpoints for a running relay.

``/metrics`` (Prometheus text, through ``prometheus-client``: the ``metrics`` extra),
``/healthz`` (the relay loop goes round) and ``/readyz`` (database and broker answer).
The server runs in the relay's own event loop, so a scrape reads the relay's numbers
without locks, and the outbox figures (pending, dead, lag) come from
:meth:`~qxdb.outbox.store.OutboxStore.stats` at scrape time: the same numbers, from the
same queries (partial indexes), as ``qxdb outbox stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qxdb.errors import ConfigurationError
from qxdb.outbox.metrics import EVENT_LABEL_LIMIT, OTHER_EVENTS, HistogramSnapshot

if TYPE_CHECKING:
    from qxdb.outbox.relay import OutboxRelay
    from qxdb.outbox.reports import OutboxStats
    from qxdb.outbox.store import OutboxStore

__all__ = ["MetricsServer", "healthy_within", "require_prometheus"]

log = logging.getLogger("qxdb.outbox.relay")

# A scrape waits at most this long for the outbox figures; then it reports without them.
STATS_TIMEOUT_SECONDS = 5.0


def healthy_within(relay: OutboxRelay) -> float:
    """How long the loop may go without a round before /healthz says it is stuck: its
    longest ordinary waits are a poll, a broker probe and a batch in flight (its lease)."""
    c = relay.config
    return max(30.0, 3 * c.poll_interval_seconds, 2 * c.lease_seconds, 3 * c.broker_probe_seconds)


def require_prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "--metrics-port needs prometheus-client: pip install 'qxdb[metrics]'"
        ) from None
    return prometheus_client


class _Collector:
    """Turns the last relay snapshot and outbox stats into metric families."""

    def __init__(self, server: MetricsServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snap = self.server.relay.metrics_snapshot()
        by_event = [
            ("published", "Events the stream acknowledged as newly stored"),
            ("duplicate", "Events the stream already held (dropped by its duplicate window)"),
            ("failed", "Publish attempts that failed and will be retried"),
            ("dead", "Events that went dead (max attempts, or undeliverable)"),
        ]
        for name, doc in by_event:
            family = CounterMetricFamily(f"qxdb_relay_events_{name}", doc, labels=["event"])
            for event, totals in sorted(snap.by_event.items()):
                value = totals.duplicates if name == "duplicate" else getattr(totals, name)
                family.add_metric([event], value)
            yield family
        yield CounterMetricFamily(
            "qxdb_relay_lease_lost",
            "Events whose lease ran out before they were marked or sent",
            value=snap.lease_lost,
        )
        yield CounterMetricFamily("qxdb_relay_claimed", "Rows claimed", value=snap.claimed)
        yield CounterMetricFamily("qxdb_relay_batches", "Batches settled", value=snap.batches)
        for name, hist in (
            ("claim", snap.claim_seconds),
            ("publish", snap.publish_seconds),
            ("mark", snap.mark_seconds),
        ):
            histogram = HistogramMetricFamily(
                f"qxdb_relay_{name}_duration_seconds", f"Duration of one batch's {name}"
            )
            histogram.add_metric([], _buckets(hist), hist.sum)
            yield histogram
        yield GaugeMetricFamily(
            "qxdb_relay_broker_connected",
            "1 while the broker takes messages",
            value=float(snap.broker_connected and self.server.broker_ok),
        )
        yield GaugeMetricFamily(
            "qxdb_relay_database_connected",
            "1 while the database answers",
            value=float(snap.database_connected and self.server.stats_ok),
        )
        yield GaugeMetricFamily(
            "qxdb_relay_heartbeat_age_seconds",
            "Seconds since the relay loop last went round",
            value=snap.heartbeat_age_seconds,
        )
        stats = self.server.stats
        if stats is None or not self.server.stats_ok:
            return
        yield GaugeMetricFamily(
            "qxdb_outbox_lag_seconds",
            "Age of the oldest pending event (database clock); 0 when none is pending",
            value=stats.lag_seconds,
        )
        yield GaugeMetricFamily(
            "qxdb_outbox_pending", "Undelivered, not dead events", value=stats.pending
        )
        yield GaugeMetricFamily("qxdb_outbox_dead", "Dead events", value=stats.dead)
        events = GaugeMetricFamily(
            "qxdb_outbox_events", "Events by name and status", labels=["event", "status"]
        )
        rest: dict[str, int] = {}
        for i, counts in enumerate(stats.by_event):
            for status in ("pending", "failed", "dead"):
                value = getattr(counts, status)
                if i < EVENT_LABEL_LIMIT:
                    events.add_metric([counts.event_name, status], value)
                else:
                    rest[status] = rest.get(status, 0) + value
        for status, value in rest.items():
            events.add_metric([OTHER_EVENTS, status], value)
        yield events


def _buckets(hist: HistogramSnapshot) -> list[tuple[str, float]]:
    # Prometheus spells the bounds as Go does: "+Inf", "0.005", "1.0".
    return [
        ("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in hist.buckets
    ]


class MetricsServer:
    """HTTP endpoint of one relay, in its event loop: ``await start()``, ``await close()``."""

    def __init__(self, relay: OutboxRelay, store: OutboxStore, *, host: str, port: int) -> None:
        prometheus = require_prometheus()
        self.relay = relay
        self.store = store
        self.host = host
        self.port = port
        self.stats: OutboxStats | None = None
        self.stats_ok = True
        self.broker_ok = True
        self._registry = prometheus.CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(self))
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("relay: metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def render_metrics(self) -> bytes:
        """The Prometheus text of this moment (reads the outbox stats first)."""
        from prometheus_client import generate_latest

        # The publisher's own view too: between two rounds of an idle relay (a poll
        # interval) the relay itself has not looked yet.
        self.broker_ok = await self._broker_ready()
        try:
            self.stats = await asyncio.wait_for(self.store.stats(), STATS_TIMEOUT_SECONDS)
            self.stats_ok = True
        except Exception as exc:
            self.stats_ok = False
            log.debug("relay: metrics without outbox stats: %s", exc)
        data: bytes = generate_latest(self._registry)
        return data

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        snap = self.relay.metrics_snapshot()
        ok = snap.running and snap.heartbeat_age_seconds <= healthy_within(self.relay)
        return ok, {
            "running": snap.running,
            "heartbeat_age_seconds": round(snap.heartbeat_age_seconds, 3),
            "worker_id": snap.worker_id,
        }

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Database and broker reachable now (a real round trip to each)."""
        from sqlalchemy import text

        database = True
        try:
            async with asyncio.timeout(STATS_TIMEOUT_SECONDS):
                async with self.store.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            database = False
        broker = await self._broker_ready()
        return database and broker, {"database": database, "broker": broker}

    async def _broker_ready(self) -> bool:
        """The relay's view of the broker, and the publisher's when it can tell."""
        if not self.relay.broker_connected:
            return False
        ask = getattr(self.relay.publisher, "ready", None)
        return True if ask is None else bool(await ask())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here depends on them
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                await self._reply(writer, 200, await self.render_metrics(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, body = self.healthy() if path == "/healthz" else await self.ready()
                await self._reply(
                    writer, 200 if ok else 503, json.dumps(body).encode(), "application/json"
                )
            else:
                await self._reply(writer, 404, b"not found\n", "text/plain")
        except Exception as exc:  # a bad client must never reach the relay
            log.debug("relay: metrics request failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, code: int, body: bytes, kind: str) -> None:
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
