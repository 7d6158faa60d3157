"""Output: Rich for people (honouring NO_COLOR and non-TTY stdout), JSON for programs.

Data goes to stdout; everything about the run (which database, progress, warnings) goes
to stderr, so ``--json`` output is always exactly one JSON document. Numbers, plurals,
ages and ids are formatted here and nowhere else, so every command writes them alike.
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
    from rich.table import Table

    from qxdb.outbox.reports import OutboxRow, OutboxStats
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
        from qxdb.urls import DEFAULT_SQLITE_URL, sqlite_file

        path = (sqlite_file(DEFAULT_SQLITE_URL) or Path("qxdb.sqlite3")).resolve()
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


# -- numbers, words, ages, ids ---------------------------------------------------------


def number(value: int) -> str:
    """``200,000``: thousands separators, everywhere a count is shown."""
    return f"{value:,}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 row``, ``2,000 rows``; ``words`` for irregular plurals (``batches``)."""
    return f"{number(count)} {word if count == 1 else (words or word + 's')}"


def age(seconds: float) -> str:
    """One format for every lag and age: ``51m``, ``1h2m3s``, ``0s``."""
    from datetime import timedelta

    from qxdb.durations import format_duration

    return format_duration(timedelta(seconds=seconds))


def short_id(value: UUID | str | None) -> str:
    """The last 8 hex digits of an id (a UUIDv7 starts with its timestamp, so the start
    of ids made in the same millisecond is the same): ``…0c1d2e3f``."""
    if value is None:
        return ""
    text = str(value)
    return "…" + text[-8:] if len(text) > 9 else text


def when(value: datetime | None) -> str:
    # The year padded by hand: strftime's %Y gives "3" for the year 3 on glibc.
    return "" if value is None else f"{value.year:04d}" + value.strftime("-%m-%d %H:%M:%SZ")


def one_line(text: str | None) -> str:
    return "" if not text else " ".join(text.split())


# -- tables -------------------------------------------------------------------------------


def cut_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by ``…``. Dotted
    names differ at their end (``shop.order.placed``, ``shop.order.paid``), so more of
    the end than of the start stays: cut at the end, both would read ``shop.order.…``."""
    if len(text) <= width:
        return text
    if width < 2:
        return "…"[:width]
    keep = width - 1
    head = keep * 2 // 5
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def fitted_table(
    columns: list[tuple[str, list[str]]],
    *,
    squeeze: tuple[str, ...],
    right: tuple[str, ...] = (),
    middle: tuple[str, ...] = (),
    wide: bool = False,
) -> Table:
    """A table whose lines never wrap: the columns not in ``squeeze`` keep their width,
    the ``squeeze`` ones share the rest of the terminal in that order (each at least 8)
    and end in ``…``, or lose their middle (:func:`cut_middle`) when also in ``middle``
    (names, which must stay told apart). Rich would squeeze every column alike, headers
    and numbers too."""
    from rich.table import Table

    natural = {name: max([len(name), *(len(c) for c in cells)]) for name, cells in columns}
    limits: dict[str, int] = {}
    if not wide:
        room = out().width - 2 * (len(columns) - 1)
        room -= sum(w for name, w in natural.items() if name not in squeeze)
        for i, name in enumerate(squeeze):
            later = 10 * (len(squeeze) - i - 1)  # keep some room for the next ones
            limits[name] = max(8, min(natural[name], room - later))
            room -= limits[name]
    columns = [
        (name, [cut_middle(c, limits[name]) for c in cells])
        if name in middle and name in limits
        else (name, cells)
        for name, cells in columns
    ]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, _ in columns:
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name in right else "left",
            max_width=limits.get(name),
            min_width=None if name in squeeze else natural[name],
        )
    for i in range(len(columns[0][1]) if columns else 0):
        table.add_row(*(cells[i] for _, cells in columns))
    return table


def outbox_rows_table(rows: list[OutboxRow], *, wide: bool = False) -> Table:
    """Outbox rows, one line each, fitting the terminal (80 columns): short ids, the time
    without the year, the version and tenant columns only when they say something, and
    long event names cut in the middle and long errors ending in ``…`` instead of
    wrapping. ``wide`` (``--wide``) shows all whole."""
    ident = (lambda v: "" if v is None else str(v)) if wide else short_id
    stamp = when if wide else (lambda v: "" if v is None else v.strftime("%m-%d %H:%M:%S"))
    columns: list[tuple[str, list[str]]] = [
        ("id", [ident(r.id) for r in rows]),
        ("event", [r.event_name for r in rows]),
    ]
    if wide or any(r.event_version != 1 for r in rows):
        columns.append(("v", [str(r.event_version) for r in rows]))
    if wide or any(r.tenant_id is not None for r in rows):
        columns.append(("tenant", [ident(r.tenant_id) for r in rows]))
    columns += [
        ("occurred" if wide else "occurred UTC", [stamp(r.occurred_at) for r in rows]),
        ("status", [r.status for r in rows]),
        ("tries", [number(r.attempts) for r in rows]),
        ("last error", [one_line(r.last_error) for r in rows]),
    ]
    return fitted_table(
        columns,
        squeeze=("event", "last error"),
        right=("v", "tries"),
        middle=("event",),
        wide=wide,
    )


def print_table(table: Table, *, wide: bool = False) -> None:
    """Print a table to stdout: the terminal's width (``COLUMNS`` off a terminal, else
    80), or as wide as it needs with ``wide``, so a line never wraps."""
    console = out()
    if not wide:
        console.print(table)
        return
    width = console.width
    console.width = 10_000
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def print_stats(report: OutboxStats, *, exact: bool) -> None:
    """The human view of :class:`~qxdb.outbox.reports.OutboxStats`."""
    from rich.table import Table

    about = "~" if report.published_is_estimate else ""
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(no_wrap=True)
    summary.add_column(no_wrap=True, overflow="ellipsis")
    summary.add_row("table", report.table)
    summary.add_row("pending", f"{number(report.pending)} (failed {number(report.failed)})")
    summary.add_row("published", f"{about}{number(report.published)}")
    summary.add_row("dead", number(report.dead))
    summary.add_row("total", f"{about}{number(report.total)}")
    summary.add_row("lag", age(report.lag_seconds) if report.pending else "none")
    out().print(summary)
    if report.by_event:
        names = ["pending", "failed", "dead", *(["published"] if exact else [])]
        columns = [("event", [c.event_name for c in report.by_event])]
        columns += [
            (name, [number(getattr(c, name) or 0) for c in report.by_event]) for name in names
        ]
        out().print()
        print_table(
            fitted_table(columns, squeeze=("event",), right=tuple(names), middle=("event",))
        )
