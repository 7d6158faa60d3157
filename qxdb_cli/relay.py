"""``qxdb outbox relay``: deliver pending outbox events to NATS JetStream."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from qxdb.core import defaults
from qxdb_cli import render

if TYPE_CHECKING:
    from qxdb.outbox.relay import RelayCounters


def relay(
    nats_url: Annotated[
        str,
        typer.Option(
            "--nats-url",
            envvar="QXDB_NATS_URL",
            help="NATS server URL (a cluster: several, comma-separated).",
        ),
    ] = defaults.NATS_URL,
    subject_prefix: Annotated[
        str,
        typer.Option(
            "--subject-prefix", help="Subjects are <prefix>.<event name>, e.g. acme.orders.placed."
        ),
    ] = defaults.SUBJECT_PREFIX,
    stream: Annotated[
        str | None,
        typer.Option("--stream", help="JetStream stream name (default: QXDB_<PREFIX>)."),
    ] = None,
    create_stream: Annotated[
        bool,
        typer.Option(
            "--create-stream/--no-create-stream",
            help="Create the stream over <prefix>.> when it is missing.",
        ),
    ] = True,
    duplicate_window: Annotated[
        float,
        typer.Option("--duplicate-window", min=1, help="Duplicate window of a created stream, s."),
    ] = defaults.RELAY_DUPLICATE_WINDOW_SECONDS,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Rows per claim (1 to 10,000).")
    ] = (defaults.RELAY_BATCH_SIZE),
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", help="Attempts before a row is dead.")
    ] = defaults.RELAY_MAX_ATTEMPTS,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Keep recorded order per ordering key.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is deliverable now, then exit.")
    ] = False,
    lease_seconds: Annotated[
        float, typer.Option("--lease-seconds", help="How long a claim is held (0.1 s to a week).")
    ] = defaults.RELAY_LEASE_SECONDS,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", help="Fallback poll when idle, seconds (0.01 to 3600)."),
    ] = defaults.RELAY_POLL_INTERVAL_SECONDS,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Name of this relay in leases.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final counters as one JSON document.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus /metrics, /healthz and /readyz on this port "
            "(needs the metrics extra).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Interface the metrics endpoint listens on.")
    ] = defaults.RELAY_METRICS_HOST,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="QX_DB__LOG_FORMAT",
            help="Log lines on stderr: text, or json (one object per line).",
        ),
    ] = defaults.RELAY_LOG_FORMAT,
) -> None:
    """Deliver pending outbox events to NATS JetStream, at least once and de-duplicated.

    Each row goes out with its delivery id as Nats-Msg-Id, so a re-send after a crash is
    dropped by the stream's duplicate window. Run several relays on PostgreSQL to scale
    out; on SQLite run one. While NATS is down nothing is claimed: one line when it goes,
    a reminder every 30 s, one line when it is back.

    SIGINT/SIGTERM finish the batches in flight, release the leases still held and print
    what was published and released (exit 130 after SIGINT, 0 after SIGTERM). With
    --once: exit 0 when every claimed event was published, 1 when some failed or went
    dead, 3 when NATS or the database cannot be reached. Bad options exit 2.

    With --metrics-port, Prometheus metrics (docs/relay.md lists them) are served at
    /metrics, and /healthz (the loop goes round) and /readyz (database and broker answer)
    say 200 or 503. --log-format json writes one JSON object per log line.

    Example: qxdb outbox relay --nats-url nats://127.0.0.1:4222 --subject-prefix acme --once
    """
    import asyncio
    import sys

    from qxdb.errors import ValidationError
    from qxdb.outbox.publishers import validate_subject_prefix
    from qxdb.outbox.relay import RelayConfig, default_worker_id, relay_to_nats
    from qxdb_cli.state import load_settings

    if log_format not in _LOG_FORMATS:
        raise ValidationError(
            f"invalid --log-format {log_format!r} (or QX_DB__LOG_FORMAT): expected "
            + " or ".join(_LOG_FORMATS)
        )
    json_logs = log_format == "json"
    validate_subject_prefix(subject_prefix)
    if metrics_port is not None:
        from qxdb.outbox.metrics_http import require_prometheus

        require_prometheus()  # bad usage, said before any database is looked for
    _check_nats_url(nats_url)
    if stream is not None:
        _check_stream(stream)
    worker_id = worker_id or default_worker_id()
    # The library owns the ranges (ConfigurationError, exit 2): checked before any
    # database is looked for.
    config = RelayConfig(
        batch_size=batch_size,
        max_attempts=max_attempts,
        ordered=ordered,
        lease_seconds=lease_seconds,
        poll_interval_seconds=poll_interval,
        worker_id=worker_id,
    )
    settings = load_settings()
    logger = logging.getLogger("qxdb.outbox.relay")
    if not json_logs:
        render.announce_database(settings)
    # A machine reading JSON lines gets no live line drawn between them.
    live = sys.stderr.isatty() and not json_logs
    console = _RelayConsole(live=live)
    console.setFormatter(
        _JsonFormatter(worker_id)
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    if json_logs:
        logger.info(
            "database: %s%s",
            settings.display_url,
            " (the embedded SQLite default: QX_DB__URL is not set)"
            if settings.url_is_default
            else "",
        )
    try:
        final = asyncio.run(
            relay_to_nats(
                settings,
                nats_url=nats_url,
                subject_prefix=subject_prefix,
                config=config,
                stream=stream,
                ensure_stream=create_stream,
                duplicate_window_seconds=duplicate_window,
                once=once,
                on_batch=console.show if live else None,
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            )
        )
        if json_logs:
            logger.info(_summary(final), extra={"qxdb_counts": final.to_dict()})
    finally:
        console.end()
        logger.removeHandler(console)
    if as_json:
        render.print_json(final.to_dict())
    if not json_logs:
        render.note(_summary(final))
    if final.stopped_by == "SIGINT":
        raise typer.Exit(130)
    if once and (final.retried or final.dead):
        # The run finished, and some events failed or went dead in it: a finding.
        raise typer.Exit(1)


def _summary(counters: RelayCounters) -> str:
    """The one line a stopped relay leaves: what it published, what it gave back."""
    published = f"published {counters.published:,} event{'s' * (counters.published != 1)}"
    if counters.stopped_by is None:
        head = f"relay done: {published}"
    else:
        released = counters.released
        head = (
            f"relay stopped by {counters.stopped_by}: {published}, released "
            f"{released:,} lease{'s' * (released != 1)}"
            + (" (those events are pending for the next relay)" if released else "")
        )
    return (
        f"{head}; retried={counters.retried} dead={counters.dead} "
        f"duplicates={counters.duplicates} lease_lost={counters.lease_lost + counters.fenced}"
    )


class _RelayConsole(logging.Handler):
    """The relay's stderr: log lines, and on a terminal one live line of counters.

    A log line first clears the live line and then draws it again below itself, so a
    warning is never glued onto the counters. With NO_COLOR no escape code is written:
    the live line is blanked with spaces instead.
    """

    def __init__(self, *, live: bool) -> None:
        super().__init__()
        self.live = live
        self.status = ""

    def _clear(self) -> str:
        if not self.status:
            return ""
        return "\r" + " " * len(self.status) + "\r" if render.plain() else "\r\x1b[2K"

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        if self.live and getattr(record, "qxdb_counters", False):
            return  # the live line shows these already
        try:
            text = self.format(record)
            sys.stderr.write(f"{self._clear()}{text}\n{self.status}")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)

    def show(self, counters: RelayCounters) -> None:
        import sys

        clear = self._clear()
        self.status = f"relay: {counters.line()}"
        sys.stderr.write(f"{clear or chr(13)}{self.status}")
        sys.stderr.flush()

    def end(self) -> None:
        import sys

        if self.status:
            sys.stderr.write(self._clear())
            sys.stderr.flush()
            self.status = ""


_LOG_FORMATS = ("text", "json")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event (the message), worker, and the
    counters where the line reports them. Messages are the relay's own, which never
    carry a password (URLs are redacted where they are made)."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            "worker_id": self.worker_id,
        }
        counts = getattr(record, "qxdb_counts", None)
        if counts is not None:
            doc["counts"] = counts
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str)


def _check_nats_url(url: str) -> None:
    """A URL nats-py cannot use is bad input (exit 2), not an unreachable broker (exit 3)."""
    from qxdb.urls import check_nats_url

    check_nats_url(url, what="--nats-url")


def _check_stream(name: str) -> None:
    """JetStream refuses these names only after we connected; say so before, as bad input."""
    import re

    from qxdb.errors import ValidationError

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name):
        raise ValidationError(
            f"invalid --stream {name!r}: use letters, digits, '-' and '_' "
            "(no spaces, dots, wildcards or slashes)"
        )
