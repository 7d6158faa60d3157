"""``qxdb outbox``: inspect and operate the transactional outbox.

Each command parses its options, calls the :class:`qxdb.outbox.store.OutboxStore`, and
renders the answer. Exit codes: 0 done; 1 ``show`` found no such row, or a question was
declined; 2 a bad option (status, duration, timestamp, id), a missing outbox table, or a
bulk change asked for without a terminal and without ``--yes``; 3 the database could not
be reached.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from qxdb.core import defaults
from qxdb_cli import relay as _relay, render

if TYPE_CHECKING:
    from qxdb.outbox.reports import OutboxRow
    from qxdb.outbox.selection import OutboxSelection, OutboxStatus

app = typer.Typer(help="Inspect and operate the transactional outbox.", no_args_is_help=True)

app.command("relay")(_relay.relay)

_JSON = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_STATUS = Annotated[
    str | None,
    typer.Option(
        "--status",
        "-s",
        help="pending (undelivered, incl. failed), failed, published, dead or all.",
        show_default=False,
    ),
]
_EVENT = Annotated[
    str | None,
    typer.Option(
        "--event", "-e", help="Event name, exact or a glob such as 'orders.*'.", show_default=False
    ),
]
_TENANT = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id (UUID).", show_default=False)
]
_SINCE = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Occurred at or after: ISO 8601 with offset (2026-11-27T10:00:00Z), a date, or a duration ago (2h).",
        show_default=False,
    ),
]
_UNTIL = Annotated[
    str | None,
    typer.Option("--until", help="Occurred before (same forms as --since).", show_default=False),
]
_IDS = Annotated[
    list[str] | None,
    typer.Option("--id", help="A row id; repeat for several.", show_default=False),
]
_YES = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; needed without a terminal.")]
_DRY_RUN = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change, change nothing.")
]


def _uuid(value: str, what: str) -> Any:
    from uuid import UUID

    from qxdb.errors import ValidationError

    try:
        return UUID(value.strip())
    except ValueError:
        raise ValidationError(f"invalid {what} {value!r}: expected a UUID") from None


def _selection(
    status: str | None,
    event: str | None,
    tenant: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None,
) -> OutboxSelection:
    from datetime import UTC, datetime

    from qxdb.durations import parse_instant
    from qxdb.outbox.selection import OutboxSelection

    now = datetime.now(UTC)
    return OutboxSelection(
        # OutboxSelection checks the value and names the valid ones.
        status=cast("OutboxStatus", (status or "all").strip().lower()),
        event=event,
        tenant_id=None if tenant is None else _uuid(tenant, "tenant id"),
        since=None if since is None else parse_instant(since, now=now, what="--since"),
        until=None if until is None else parse_instant(until, now=now, what="--until"),
        ids=tuple(_uuid(i, "row id") for i in ids or ()),
    )


def _when(value: Any) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _rows_table(rows: list[OutboxRow]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    # Ids stay whole, even on a narrow terminal: operators copy them into `show`/`--id`.
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("event", min_width=8, overflow="fold")
    table.add_column("v", justify="right", min_width=1)
    table.add_column("tenant", min_width=8, overflow="fold")
    table.add_column("occurred", min_width=10)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("attempts", justify="right", min_width=3)
    table.add_column("last error", min_width=10)
    for row in rows:
        table.add_row(
            str(row.id),
            row.event_name,
            str(row.event_version),
            "" if row.tenant_id is None else str(row.tenant_id),
            _when(row.occurred_at),
            row.status,
            str(row.attempts),
            _short(row.last_error),
        )
    return table


def _print_table(table: Any) -> None:
    console = render.out()
    if console.is_terminal:
        console.print(table)
        return
    # Off a terminal Rich would squeeze the table into 80 columns; ids must stay whole.
    width = console.width
    console.width = 220
    try:
        console.print(table)
    finally:
        console.width = width


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


@app.command("inspect")
def inspect(
    status: _STATUS = None,
    event: _EVENT = None,
    tenant: _TENANT = None,
    since: _SINCE = None,
    until: _UNTIL = None,
    ids: _IDS = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=defaults.OUTBOX_LIST_LIMIT_MAX)
    ] = defaults.OUTBOX_LIST_LIMIT,
    after: Annotated[
        str | None,
        typer.Option(
            "--after", help="Continue after this id (from the previous page).", show_default=False
        ),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """List outbox rows, oldest first: id, event, version, tenant, occurred, status, attempts, last error.

    Read-only. Pages by id: the last line names the --after value of the next page.

    Example: qxdb outbox inspect --status failed --event 'orders.*' --since 2h --limit 20
    """
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    selection = _selection(status, event, tenant, since, until, ids)
    start = None if after is None else _uuid(after, "--after id")
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.list_rows(selection, limit=limit, after=start)

    page = _run(work())
    if as_json:
        render.print_json(page.to_dict())
        return
    if not page.rows:
        render.out().print("no matching outbox rows", markup=False)
        return
    _print_table(_rows_table(page.rows))
    if page.next_after is not None:
        render.note(f"more rows: add --after {page.next_after}")


@app.command("show")
def show(
    row_id: Annotated[str, typer.Argument(metavar="ID", help="The outbox row id.")],
    with_state: Annotated[
        bool,
        typer.Option("--row", help="Print the whole row (delivery state and envelope)."),
    ] = False,
) -> None:
    """Print the event envelope of one outbox row as pretty JSON.

    Read-only. A missing id is one line on stderr and exit code 1.

    Example: qxdb outbox show 0193a1b2-7c4d-7e5f-8a9b-0c1d2e3f4a5b --row
    """
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    key = _uuid(row_id, "row id")
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.get(key)

    row = _run(work()).value
    render.print_json(row.to_dict() if with_state else row.payload)


@app.command("stats")
def stats(
    exact: Annotated[
        bool,
        typer.Option(
            "--exact", help="Count published rows exactly, by event (reads the whole table)."
        ),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Counts by status and by event name, and the lag (age of the oldest pending row).

    Read-only. On large PostgreSQL tables the published count is the planner's estimate
    unless --exact; pending, failed and dead counts are always exact.

    Example: qxdb outbox stats --json
    """
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.stats(exact=exact)

    report = _run(work())
    if as_json:
        render.print_json(report.to_dict())
        return
    render_stats(report, exact=exact)


def render_stats(report: Any, *, exact: bool) -> None:
    """The human view of :class:`~qxdb.outbox.reports.OutboxStats` (also used by the demo)."""
    from datetime import timedelta

    from rich.table import Table

    from qxdb.durations import format_duration

    about = "~" if report.published_is_estimate else ""
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_row("table", report.table)
    summary.add_row("pending", f"{report.pending} (failed {report.failed})")
    summary.add_row("published", f"{about}{report.published}")
    summary.add_row("dead", str(report.dead))
    summary.add_row("total", f"{about}{report.total}")
    summary.add_row(
        "lag",
        format_duration(timedelta(seconds=report.lag_seconds)) if report.pending else "none",
    )
    render.out().print(summary)
    if report.by_event:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("event", "pending", "failed", "dead", *(["published"] if exact else [])):
            table.add_column(name, justify="left" if name == "event" else "right")
        for counts in report.by_event:
            cells = [counts.event_name, str(counts.pending), str(counts.failed), str(counts.dead)]
            if exact:
                cells.append(str(counts.published))
            table.add_row(*cells)
        render.out().print()
        _print_table(table)


def _confirm_or_refuse(question: str, *, count: int, yes: bool) -> None:
    from qxdb.errors import ValidationError

    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError(
            f"refusing to change {count} rows without a terminal to ask on: pass --yes"
        )
    typer.confirm(question, abort=True, err=True)


class _Bar:
    """A Rich progress bar on stderr when it is a terminal; otherwise nothing."""

    def __init__(self, label: str, total: int) -> None:
        self._progress: Any = None
        self._task: Any = None
        if render.err().is_terminal:
            from rich.progress import Progress

            self._progress = Progress(console=render.err(), transient=True)
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)


def _report_line(report: Any) -> str:
    return (
        f"{report.operation}: {report.rows} rows in {report.batches} "
        f"batch{'' if report.batches == 1 else 'es'}, "
        f"{report.seconds:.2f} s ({report.rows_per_second:,.0f} rows/s), "
        f"longest statement {report.longest_statement_seconds * 1000:.0f} ms"
    )


@app.command("replay")
def replay(
    status: _STATUS = None,
    event: _EVENT = None,
    tenant: _TENANT = None,
    since: _SINCE = None,
    until: _UNTIL = None,
    ids: _IDS = None,
    yes: _YES = False,
    dry_run: _DRY_RUN = False,
    as_json: _JSON = False,
) -> None:
    """Send the selected rows again: back to pending, attempts 0, errors cleared, fresh delivery ids.

    The envelope, and the event id in it, stay the same. Shows how many rows and a sample,
    then asks (--yes to skip; required without a terminal). --dry-run changes nothing.
    Say which rows: at least one selection option (--status all means every row).

    Example: qxdb outbox replay --status failed --event 'orders.*' --dry-run
    """
    from qxdb.errors import ValidationError
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    if not any((status, event, tenant, since, until, ids)):
        raise ValidationError(
            "say which rows to replay: --status, --event, --tenant, --since, --until or --id "
            "(--status all replays every row)"
        )
    selection = _selection(status, event, tenant, since, until, ids)
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> None:
        async with open_outbox_store(settings) as store:
            plan = await store.plan_replay(selection)
            if not as_json:
                render.out().print(
                    f"{plan.count} outbox rows match {_describe(plan.selection)}", markup=False
                )
                if plan.sample:
                    _print_table(_rows_table(plan.sample))
            if dry_run or plan.count == 0:
                if as_json:
                    render.print_json({"dry_run": dry_run, "plan": plan.to_dict(), "report": None})
                else:
                    render.note("dry run: nothing was changed" if dry_run else "nothing to replay")
                return
            _confirm_or_refuse(f"Replay {plan.count} rows?", count=plan.count, yes=yes)
            with _Bar("replaying", plan.count) as bar:
                report = await store.replay(selection, progress=bar)
            if as_json:
                render.print_json(
                    {"dry_run": False, "plan": plan.to_dict(), "report": report.to_dict()}
                )
            else:
                render.out().print(_report_line(report), markup=False)

    _run(work())


def _describe(selection: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in selection.items()
    )


@app.command("purge")
def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Age, e.g. 7d, 12h, 1h30m (units s m h d w).", show_default=False
        ),
    ],
    include_dead: Annotated[
        bool, typer.Option("--include-dead", help="Also delete dead rows that old (by dead_at).")
    ] = False,
    yes: _YES = False,
    dry_run: _DRY_RUN = False,
    as_json: _JSON = False,
) -> None:
    """Delete rows published longer ago than --older-than, in batches of 10,000.

    Pending rows are never deleted; dead rows only with --include-dead. Shows how many
    rows, then asks (--yes to skip; required without a terminal). --dry-run changes nothing.

    Example: qxdb outbox purge --older-than 7d --include-dead --dry-run
    """
    from datetime import UTC, datetime

    from qxdb.durations import ago, parse_duration
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    age = parse_duration(older_than, what="--older-than")
    now = datetime.now(UTC)
    ago(age, now=now, what="--older-than")  # the cutoff must be a date: checked before connecting
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> None:
        async with open_outbox_store(settings) as store:
            plan = await store.plan_purge(age, include_dead=include_dead, now=now)
            if not as_json:
                dead = f" and {plan.dead} dead" if include_dead else ""
                render.out().print(
                    f"{plan.published} published{dead} rows older than {older_than} "
                    f"(before {plan.cutoff.isoformat()})",
                    markup=False,
                )
            if dry_run or plan.count == 0:
                if as_json:
                    render.print_json({"dry_run": dry_run, "plan": plan.to_dict(), "report": None})
                else:
                    render.note("dry run: nothing was changed" if dry_run else "nothing to purge")
                return
            _confirm_or_refuse(f"Delete {plan.count} rows?", count=plan.count, yes=yes)
            with _Bar("purging", plan.count) as bar:
                report = await store.purge(
                    age, include_dead=include_dead, now=now, progress=bar, expected=plan.count
                )
            if as_json:
                render.print_json(
                    {"dry_run": False, "plan": plan.to_dict(), "report": report.to_dict()}
                )
            else:
                render.out().print(_report_line(report), markup=False)

    _run(work())
