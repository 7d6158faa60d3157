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
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from rich.console import Console

    from qxdb.settings import DatabaseSettings


def plain() -> bool:
    """NO_COLOR (any non-empty value) asks for no escape codes at all, bold included."""
    return bool(os.environ.get("NO_COLOR"))


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    if plain():
        # Rich's own no_color still emits bold and dim; no colour system emits no escapes.
        return Console(stderr=stderr, color_system=None, highlight=False, soft_wrap=True)
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@cache
def out() -> Console:
    return _console(stderr=False)


@cache
def err() -> Console:
    return _console(stderr=True)


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
        # The absolute path: "./qxdb.sqlite3" alone hides which folder a forgotten
        # QX_DB__URL sent us to, and a missing file means an empty database is being made.
        from qxdb.urls import DEFAULT_SQLITE_URL

        path = Path(DEFAULT_SQLITE_URL.split(":///", 1)[1]).resolve()
        fresh = "" if path.exists() else ", a new empty file"
        unset = "is empty" if "QX_DB__URL" in os.environ else "is not set"
        note(
            f"database: {settings.display_url} (embedded SQLite default {path}{fresh}: "
            f"QX_DB__URL {unset})"
        )
    else:
        note(f"database: {settings.display_url}")


def is_tty() -> bool:
    return sys.stdout.isatty()
