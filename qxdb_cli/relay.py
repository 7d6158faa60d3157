"""``qxdb outbox relay``: lands with the relay issue."""

from __future__ import annotations

import typer


def relay() -> None:
    """Deliver pending outbox events to NATS JetStream."""
    raise typer.Exit(code=2)
