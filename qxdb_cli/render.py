"""Output: Rich for people (honouring NO_COLOR and non-TTY stdout), JSON for programs.

Data goes to stdout; everything about the run (which database, progress, warnings) goes
to stderr, so ``--json`` output is always exactly one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from rich.console import Console

    from qxdb.settings import DatabaseSettings


@cache
def out() -> Console:
    from rich.console import Console

    return Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True)


@cache
def err() -> Console:
    from rich.console import Console

    return Console(
        stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def print_json(document: Any) -> None:
    sys.stdout.write(
        json.dumps(document, default=_json_default, indent=2, ensure_ascii=False) + "\n"
    )
    sys.stdout.flush()


def note(message: str) -> None:
    """A line about the run, on stderr."""
    err().print(message, markup=False)


def announce_database(settings: DatabaseSettings) -> None:
    """Name the database on stderr; say loudly when it is the embedded default."""
    if settings.url_is_default:
        note(f"database: {settings.display_url} (embedded SQLite default: QX_DB__URL is not set)")
    else:
        note(f"database: {settings.display_url}")


def is_tty() -> bool:
    return sys.stdout.isatty()
