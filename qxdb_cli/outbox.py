"""``qxdb outbox``: commands land here with their issue."""

from __future__ import annotations

import typer

app = typer.Typer(help="outbox commands.", no_args_is_help=True)
