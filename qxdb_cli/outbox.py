"""``qxdb outbox``: inspect and operate the transactional outbox."""

from __future__ import annotations

import typer

from qxdb_cli import relay as _relay

app = typer.Typer(help="Inspect and operate the transactional outbox.", no_args_is_help=True)

app.command("relay")(_relay.relay)
