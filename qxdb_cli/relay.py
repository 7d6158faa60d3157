"""``qxdb outbox relay``: deliver pending outbox events to NATS JetStream."""

from __future__ import annotations

from typing import Annotated

import typer

from qxdb.core import defaults
from qxdb_cli import render


def relay(
    nats_url: Annotated[
        str, typer.Option("--nats-url", envvar="QXDB_NATS_URL", help="NATS server URL.")
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
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per claim.")] = (
        defaults.RELAY_BATCH_SIZE
    ),
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Attempts before a row is dead.")
    ] = defaults.RELAY_MAX_ATTEMPTS,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Keep recorded order per ordering key.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="Drain what is deliverable now, then exit.")
    ] = False,
    lease_seconds: Annotated[
        float, typer.Option("--lease-seconds", min=0.1, help="How long a claim is held.")
    ] = defaults.RELAY_LEASE_SECONDS,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=0.01, help="Fallback poll when idle, seconds."),
    ] = defaults.RELAY_POLL_INTERVAL_SECONDS,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Name of this relay in leases.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final counters as one JSON document.")
    ] = False,
) -> None:
    """Deliver pending outbox events to NATS JetStream, at least once and de-duplicated.

    Each row goes out with its delivery id as Nats-Msg-Id, so a re-send after a crash is
    dropped by the stream's duplicate window. Run several relays on PostgreSQL to scale
    out; on SQLite run one. SIGINT/SIGTERM finish the batch in flight and release leases.
    Exits 3 with one line when NATS or the database cannot be reached.

    Example: qxdb outbox relay --nats-url nats://127.0.0.1:4222 --subject-prefix acme --once
    """
    import asyncio
    import logging
    import sys

    from qxdb.outbox.publishers import validate_subject_prefix
    from qxdb.outbox.relay import RelayConfig, RelayCounters, relay_to_nats
    from qxdb_cli.state import load_settings

    validate_subject_prefix(subject_prefix)
    _check_nats_url(nats_url)
    if stream is not None:
        _check_stream(stream)
    settings = load_settings()
    render.announce_database(settings)
    config = RelayConfig(
        batch_size=batch_size,
        max_attempts=max_attempts,
        ordered=ordered,
        lease_seconds=lease_seconds,
        poll_interval_seconds=poll_interval,
        worker_id=worker_id,
    )
    live = sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("qxdb.outbox.relay")
    logger.addHandler(handler)
    # On a terminal the live line shows the counters; the log keeps warnings only.
    logger.setLevel(logging.WARNING if live else logging.INFO)

    # NO_COLOR: no escape codes at all, so the line is overwritten with padding instead.
    clear = "\r" if render.plain() else "\r\x1b[2K"

    def show(counters: RelayCounters) -> None:
        sys.stderr.write(f"{clear}relay: {counters.line():<70}")
        sys.stderr.flush()

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
                on_batch=show if live else None,
            )
        )
    finally:
        if live:
            sys.stderr.write("\n")
        logger.removeHandler(handler)
    if as_json:
        render.print_json(final.to_dict())
    else:
        render.note(f"relay stopped: {final.line()}")


_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _check_nats_url(url: str) -> None:
    """A URL nats-py cannot use is bad input (exit 2), not an unreachable broker (exit 3)."""
    import re
    from urllib.parse import urlsplit

    from qxdb.errors import ValidationError

    try:
        parts = urlsplit(url.strip())
        valid = parts.scheme in _NATS_SCHEMES and bool(parts.hostname)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        valid = False
    if not valid:
        # Whatever stands before @ may be a password or a NATS token: never echo it.
        shown = re.sub(r"//[^@/]*@", "//***@", url.strip())
        raise ValidationError(
            f"invalid --nats-url {shown!r}: expected one server, nats://host:4222 "
            "(or tls://, ws://, wss://)"
        )


def _check_stream(name: str) -> None:
    """JetStream refuses these names only after we connected; say so before, as bad input."""
    import re

    from qxdb.errors import ValidationError

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name):
        raise ValidationError(
            f"invalid --stream {name!r}: use letters, digits, '-' and '_' "
            "(no spaces, dots, wildcards or slashes)"
        )
