"""``qxdb outbox``: inspect and operate the transactional outbox.

Each command parses its options, calls the :class:`qxdb.outbox.store.OutboxStore`, and
renders the answer. Exit codes: 0 done; 1 ``show`` found no such row, or a question was
declined; 2 a bad option (status, duration, timestamp, id), a missing outbox table, or a
bulk change asked for without a terminal and without ``--yes``; 3 the database could not
be reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from qxdb.core import defaults
from qxdb_cli import common, outbox_partitions as _partitions, outbox_top, relay as _relay, render
from qxdb_cli.common import DryRunOption, JsonOption, WideOption, YesOption

if TYPE_CHECKING:
    from qxdb.outbox.selection import OutboxSelection, OutboxStatus

app = typer.Typer(help="Inspect and operate the transactional outbox.", no_args_is_help=True)

app.command("relay")(_relay.relay)
app.add_typer(_partitions.app, name="partitions")
app.command("top")(outbox_top.top)

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
    str | None,
    typer.Option(
        "--tenant", help="Tenant id (UUID), or none for rows without a tenant.", show_default=False
    ),
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


_GROUP = Annotated[
    str | None,
    typer.Option(
        "--group",
        help="A failure group: the fingerprint that 'inspect --group-by' prints.",
        show_default=False,
    ),
]


def _uuid(value: str, what: str) -> Any:
    from uuid import UUID

    from qxdb.errors import ValidationError

    try:
        return UUID(value.strip())
    except ValueError:
        raise ValidationError(f"invalid {what} {value!r}: expected a UUID") from None


def _no_tenant(value: str) -> bool:
    return value.strip().lower() == "none"


def _selection(
    status: str | None,
    event: str | None,
    tenant: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None,
    group: str | None = None,
) -> OutboxSelection:
    from datetime import UTC, datetime

    from qxdb.durations import parse_instant
    from qxdb.outbox.selection import OutboxSelection

    now = datetime.now(UTC)
    return OutboxSelection(
        # OutboxSelection checks the value and names the valid ones.
        status=cast("OutboxStatus", (status or "all").strip().lower()),
        event=event,
        # "none": the rows recorded without a tenant (a group of --group-by tenant).
        tenant_id=None if tenant is None or _no_tenant(tenant) else _uuid(tenant, "tenant id"),
        no_tenant=tenant is not None and _no_tenant(tenant),
        since=None if since is None else parse_instant(since, now=now, what="--since"),
        until=None if until is None else parse_instant(until, now=now, what="--until"),
        ids=tuple(_uuid(i, "row id") for i in ids or ()),
        error_group=group,
    )


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
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="List failure groups instead of rows: by error, or by event or tenant "
            "and error. Status dead unless --status failed.",
            show_default=False,
        ),
    ] = None,
    wide: WideOption = False,
    as_json: JsonOption = False,
) -> None:
    """List outbox rows, oldest first: id, event, version, tenant, occurred, status, tries, last error.

    Read-only. Ids are shortened to their last 8 digits to fit the terminal: --wide (or
    --json) shows them whole. Pages by id: the last line names the --after value of the
    next page.

    --group-by error|event|tenant lists dead (or failed) rows grouped by the fingerprint
    of their error (ids, numbers and quoted values normalised), largest group first:
    count, first and last failure, the error; --json adds a sample row per group. Replay
    one group with 'qxdb outbox replay --group FINGERPRINT'.

    Example: qxdb outbox inspect --status failed --event 'orders.*' --since 2h --limit 20
    """
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    if group_by is not None:
        _inspect_groups(
            group_by, status, event, tenant, since, until, ids, limit, after, wide, as_json
        )
        return
    selection = _selection(status, event, tenant, since, until, ids)
    start = None if after is None else _uuid(after, "--after id")
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.list_rows(selection, limit=limit, after=start)

    page = common.run(work())
    if as_json:
        render.print_json(page.to_dict())
        return
    if not page.rows:
        render.out().print("no matching outbox rows", markup=False)
        return
    render.print_table(render.outbox_rows_table(page.rows, wide=wide), wide=wide)
    if page.next_after is not None:
        render.note(f"more rows: add --after {page.next_after}")


def _inspect_groups(
    group_by: str,
    status: str | None,
    event: str | None,
    tenant: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None,
    limit: int,
    after: str | None,
    wide: bool,
    as_json: bool,
) -> None:
    from qxdb.errors import ValidationError
    from qxdb.outbox.fingerprint import validate_grouping
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    by = validate_grouping(group_by)
    if after is not None:
        raise ValidationError("--after pages rows, not failure groups: use --limit")
    selection = _selection(status or "dead", event, tenant, since, until, ids)
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.failure_groups(selection, by=by, limit=limit)

    report = common.run(work())
    if as_json:
        render.print_json(report.to_dict())
        return
    if not report.groups:
        render.out().print(f"no {selection.status} outbox rows match", markup=False)
        return
    render.print_table(_groups_table(report, wide=wide), wide=wide)
    shown = len(report.groups)
    more = report.group_count - shown
    render.note(
        f"{render.plural(report.rows, f'{selection.status} row')} in "
        f"{render.plural(report.group_count, 'group')}"
        + (f"; {render.number(more)} smaller not shown (--limit)" if more > 0 else "")
        + "; replay one with: qxdb outbox replay --group <group>"
        + (f" --{'event' if by == 'event' else 'tenant'} <{by}>" if by != "error" else "")
    )


def _groups_table(report: Any, *, wide: bool) -> Any:
    """One line per failure group, fitted to the terminal like the row listing."""
    from rich.table import Table

    stamp = render.when if wide else (lambda v: "" if v is None else v.strftime("%m-%d %H:%M"))
    split = {"event": "event", "tenant": "tenant"}.get(report.group_by)
    columns: list[tuple[str, list[str]]] = [
        ("group", [g.fingerprint for g in report.groups]),
        ("rows", [render.number(g.count) for g in report.groups]),
        (
            "first failed" if wide else "first UTC",
            [stamp(g.first_failed_at) for g in report.groups],
        ),
        ("last failed" if wide else "last UTC", [stamp(g.last_failed_at) for g in report.groups]),
    ]
    if split == "event":
        columns.append(("event", [g.event_name for g in report.groups]))
    elif split == "tenant":
        ident = str if wide else render.short_id
        # "none" is what --tenant takes for the rows recorded without a tenant.
        columns.append(
            (
                "tenant",
                ["none" if g.tenant_id is None else ident(g.tenant_id) for g in report.groups],
            )
        )
    columns.append(("error", [render.one_line(g.error) for g in report.groups]))
    natural = {name: max([len(name), *(len(c) for c in cells)]) for name, cells in columns}
    room = render.out().width - 2 * (len(columns) - 1)
    room -= sum(w for name, w in natural.items() if name not in ("event", "error"))
    limits: dict[str, int] = {}
    if not wide:
        event = max(8, min(natural.get("event", 0), room - 20)) if split == "event" else 0
        limits = {"event": event, "error": max(10, room - event)}
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, _ in columns:
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name == "rows" else "left",
            max_width=limits.get(name),
        )
    for i in range(len(report.groups)):
        table.add_row(*(cells[i] for _, cells in columns))
    return table


@app.command("show")
def show(
    row_id: Annotated[str, typer.Argument(metavar="ID", help="The outbox row id.")],
    with_state: Annotated[
        bool,
        typer.Option("--row", help="Print the whole row (delivery state and envelope)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole row as one JSON document (= --row).")
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

    row = common.run(work()).value
    render.print_json(row.to_dict() if with_state or as_json else row.payload)


@app.command("stats")
def stats(
    exact: Annotated[
        bool,
        typer.Option(
            "--exact", help="Count published rows exactly, by event (reads the whole table)."
        ),
    ] = False,
    as_json: JsonOption = False,
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

    report = common.run(work())
    if as_json:
        render.print_json(report.to_dict())
        return
    render.print_stats(report, exact=exact)


def _report_line(report: Any) -> str:
    return (
        f"{report.operation}: {render.plural(report.rows, 'row')} in "
        f"{render.plural(report.batches, 'batch', 'batches')}, "
        f"{report.seconds:.2f} s ({render.number(round(report.rows_per_second))} rows/s), "
        f"longest statement {report.longest_statement_seconds * 1000:,.0f} ms"
    )


def _carry_out(
    plan: Any,
    change: Any,
    *,
    action: str,
    nothing: str,
    labels: tuple[str, str],
    again: str,
    dry_run: bool,
    as_json: bool,
    yes: bool,
) -> None:
    """What replay and purge share once their plan is shown: a dry run or nothing to do,
    the question, ``change(progress)`` with a progress bar (Ctrl-C says how far it got),
    and the report. ``labels``: the bar's "-ing" word and the report's past tense."""
    if dry_run or plan.count == 0:
        if as_json:
            render.print_json({"dry_run": dry_run, "plan": plan.to_dict(), "report": None})
        else:
            render.note("dry run: nothing was changed" if dry_run else nothing)
        return
    common.confirm_or_refuse(
        f"{action.capitalize()} {render.plural(plan.count, 'row')}?",
        what=f"{action} {render.plural(plan.count, 'outbox row')}",
        yes=yes,
    )
    label, done = labels
    progress = common.BatchProgress(label, plan.count)

    def interrupted() -> str:
        return f"{progress.so_far(done)}; nothing half-written; {again}"

    with progress:
        report = common.run(change(progress), interrupted=interrupted)
    if as_json:
        render.print_json({"dry_run": False, "plan": plan.to_dict(), "report": report.to_dict()})
    else:
        render.out().print(_report_line(report), markup=False)


@app.command("replay")
def replay(
    status: _STATUS = None,
    event: _EVENT = None,
    tenant: _TENANT = None,
    since: _SINCE = None,
    until: _UNTIL = None,
    ids: _IDS = None,
    group: _GROUP = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    wide: WideOption = False,
    as_json: JsonOption = False,
) -> None:
    """Send the selected rows again: back to pending, attempts 0, errors cleared, fresh delivery ids.

    The envelope, and the event id in it, stay the same. Shows how many rows and a sample,
    then asks (--yes to skip; required without a terminal). --dry-run changes nothing.
    Say which rows: at least one selection option (--status all means every row). Works
    in batches of at most 10,000 (sized to keep each statement short), each committed:
    Ctrl-C stops after the last committed batch.
    --group FINGERPRINT replays one failure group of 'inspect --group-by' (dead rows
    unless --status failed; add --event/--tenant for a group split by them). Each
    replayed row counts the replay (replay_count) and keeps its first failure time.

    Example: qxdb outbox replay --status failed --event 'orders.*' --dry-run
    """
    from qxdb.errors import ValidationError
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    if not any((status, event, tenant, since, until, ids, group)):
        raise ValidationError(
            "say which rows to replay: --status, --event, --tenant, --since, --until, --id "
            "or --group (--status all replays every row)"
        )
    if group is not None and status is None:
        status = "dead"  # a failure group is of dead rows unless said otherwise
    selection = _selection(status, event, tenant, since, until, ids, group)
    settings = load_settings()
    render.announce_database(settings)

    async def plan_it() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.plan_replay(selection)

    plan = common.run(plan_it())
    if not as_json:
        render.out().print(
            f"{render.plural(plan.count, 'outbox row')} match {_describe(plan.selection)}",
            markup=False,
        )
        if plan.sample:
            render.print_table(render.outbox_rows_table(plan.sample, wide=wide), wide=wide)

    async def change(progress: common.BatchProgress) -> Any:
        async with open_outbox_store(settings) as store:
            return await store.replay(selection, progress=progress, expected=plan.count)

    # Replayed rows leave a failed/dead/published selection, so running it again picks
    # up the rest; a selection that includes pending rows would start over.
    again = (
        "run it again to continue"
        if selection.status in ("failed", "dead", "published")
        else "running it again replays every selected row again"
    )
    _carry_out(
        plan,
        change,
        action="replay",
        nothing="nothing to replay",
        labels=("replaying", "replayed"),
        again=again,
        dry_run=dry_run,
        as_json=as_json,
        yes=yes,
    )


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
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete rows published longer ago than --older-than, in batches of at most 10,000.

    Pending rows are never deleted; dead rows only with --include-dead. Shows how many
    rows, then asks (--yes to skip; required without a terminal). --dry-run changes
    nothing. Each batch is committed: Ctrl-C stops after the last committed batch.

    Example: qxdb outbox purge --older-than 7d --include-dead --dry-run
    """
    from datetime import UTC, datetime

    from qxdb.durations import parse_age
    from qxdb.outbox.store import open_outbox_store
    from qxdb_cli.state import load_settings

    now = datetime.now(UTC)
    age, _ = parse_age(older_than, what="--older-than", now=now)
    settings = load_settings()
    render.announce_database(settings)

    async def plan_it() -> Any:
        async with open_outbox_store(settings) as store:
            return await store.plan_purge(age, include_dead=include_dead, now=now)

    plan = common.run(plan_it())
    if not as_json:
        dead = f" and {render.number(plan.dead)} dead" if include_dead else ""
        rows = "row" if plan.count == 1 else "rows"
        render.out().print(
            f"{render.number(plan.published)} published{dead} {rows} older than {older_than} "
            f"(before {render.when(plan.cutoff)})",
            markup=False,
        )

    async def change(progress: common.BatchProgress) -> Any:
        async with open_outbox_store(settings) as store:
            return await store.purge(
                age, include_dead=include_dead, now=now, progress=progress, expected=plan.count
            )

    _carry_out(
        plan,
        change,
        action="delete",
        nothing="nothing to purge",
        labels=("purging", "deleted"),
        again="run it again to delete the rest",
        dry_run=dry_run,
        as_json=as_json,
        yes=yes,
    )
