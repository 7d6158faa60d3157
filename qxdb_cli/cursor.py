"""``qxdb cursor``: commands land here with their issue."""

from __future__ import annotations

import typer

app = typer.Typer(help="cursor commands.", no_args_is_help=True)
