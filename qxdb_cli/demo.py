"""``qxdb demo``: lands with the first-five-minutes issue."""

from __future__ import annotations

import typer


def demo() -> None:
    """Run a small example service end to end on the embedded database."""
    raise typer.Exit(code=0)
