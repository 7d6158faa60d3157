"""``qxdb outbox partitions``: the partitions of a partitioned outbox (PostgreSQL).

Thin shells over :class:`qxdb.outbox.partitions.OutboxPartitions`. Exit codes: 0 done; 1
``drop`` refused a partition that still holds pending rows, or a question was declined; 2
a bad option, a table that is not partitioned, SQLite; 3 the database could not be reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from qxdb_cli import common, render
from qxdb_cli.common import DryRunOption, JsonOption, YesOption

if TYPE_CHECKING:
    from qxdb.outbox.partitions import PartitionInterval

app = typer.Typer(
    help="List, create ahead and drop the partitions of a partitioned outbox (PostgreSQL).",
    no_args_is_help=True,
)


async def _partitions(settings: Any, interval: str = "day") -> Any:
    """An engine and the partitions of the configured outbox table on it."""
    from qxdb.engine import create_engine
    from qxdb.outbox.partitions import OutboxPartitions

    engine = create_engine(settings)
    try:
        # OutboxPartitions checks the interval and names the valid ones.
        kind = cast("PartitionInterval", interval)
        return engine, OutboxPartitions(engine, settings.outbox_table, interval=kind)
    except BaseException:
        await engine.dispose()
        raise


@app.command("list")
def list_partitions(as_json: JsonOption = False) -> None:
    """Every partition, oldest first: range, estimated rows, and the pending, failed and
    leased rows that keep it from being dropped.

    Read-only. Each partition runs from its 'from' to the next one's.

    Example: qxdb outbox partitions list --json
    """
    from qxdb_cli.state import load_settings

    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        engine, parts = await _partitions(settings)
        try:
            return await parts.list_partitions()
        finally:
            await engine.dispose()

    found = common.run(work())
    if as_json:
        render.print_json({"partitions": [p.to_dict() for p in found]})
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("partition", "from UTC", "~rows", "pending", "failed", "leased"):
        table.add_column(
            name, no_wrap=True, justify="left" if name in ("partition", "from UTC") else "right"
        )
    for p in found:
        if p.is_default:
            start = "default"
        else:
            start = "MINVALUE" if p.lower is None else p.lower.strftime("%m-%d %H:%M")
        table.add_row(
            p.name,
            start,
            render.number(p.rows_estimate),
            render.number(p.pending),
            render.number(p.failed),
            render.number(p.leased),
        )
    render.print_table(table)


@app.command("create-ahead")
def create_ahead(
    days: Annotated[
        int, typer.Option("--days", min=1, max=366, help="Days ahead to cover, from today.")
    ] = 7,
    interval: Annotated[
        str, typer.Option("--interval", help="Partition size: day or hour.")
    ] = "day",
    as_json: JsonOption = False,
) -> None:
    """Make the missing partitions from today (this hour) for --days days, and a default
    partition if there is none. Idempotent: run it from cron every day.

    A range whose rows already went to the default partition (cron ran late) is not
    made: it is named with its row count and the exit code is 1.

    Each statement waits at most 100 ms for its lock and is retried, so relays keep
    running.

    Example: qxdb outbox partitions create-ahead --days 7
    """
    from qxdb_cli.state import load_settings

    kind = interval.strip().lower()
    settings = load_settings()
    render.announce_database(settings)

    async def work() -> Any:
        engine, parts = await _partitions(settings, kind)
        try:
            return await parts.create_ahead(days)
        finally:
            await engine.dispose()

    report = common.run(work())
    if as_json:
        render.print_json(report.to_dict())
    else:
        for name in report.created:
            render.out().print(f"created {name}", markup=False)
        for name in report.partial:
            render.out().print(
                f"not created {name}: partitions made with another --interval cover part "
                "of its range; rows of the rest go to the default partition",
                markup=False,
            )
        for name, rows in report.blocked.items():
            render.out().print(
                f"not created {name}: the default partition already holds "
                f"{render.plural(rows, 'row')} of its range (create-ahead ran late); "
                "they stay there",
                markup=False,
            )
        render.note(f"{render.plural(len(report.created), 'partition')} created")
    if report.blocked or report.partial:
        raise typer.Exit(1)


@app.command("drop")
def drop(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Drop partitions whose whole range is older than this (7d, 12h).",
            show_default=False,
        ),
    ],
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Drop old partitions that hold no pending, failed or leased row; refuse the others,
    naming the rows that keep each (exit 1).

    Shows what it would drop, then asks (--yes to skip; required without a terminal);
    --dry-run changes nothing. Each drop is one short transaction (detach under a 100 ms
    lock timeout, re-check, drop), safe from cron while relays run.

    Example: qxdb outbox partitions drop --older-than 7d --dry-run
    """
    from datetime import UTC, datetime

    from qxdb.durations import parse_age
    from qxdb_cli.state import load_settings

    # One instant for the plan and the drop: a question answered after midnight must not
    # drop a partition the plan did not show.
    now = datetime.now(UTC)
    age, _ = parse_age(older_than, what="--older-than", now=now, positive=True)
    settings = load_settings()
    render.announce_database(settings)

    async def plan_it(dry: bool) -> Any:
        engine, parts = await _partitions(settings)
        try:
            return await parts.drop_older_than(age, dry_run=dry, now=now)
        finally:
            await engine.dispose()

    plan = common.run(plan_it(True))
    if not as_json:
        for name in plan.dropped:
            render.out().print(
                f"would drop {name}" if dry_run else f"to drop: {name}", markup=False
            )
        for name, count in plan.refused.items():
            render.out().print(f"kept {name}: {render.plural(count, 'pending row')}", markup=False)
    report = plan
    if plan.dropped and not dry_run:
        common.confirm_or_refuse(
            f"Drop {render.plural(len(plan.dropped), 'partition')}?",
            what=f"drop {render.plural(len(plan.dropped), 'partition')}",
            yes=yes,
        )
        report = common.run(plan_it(False))
        if not as_json:
            for name in report.dropped:
                render.out().print(f"dropped {name}", markup=False)
            for name, count in report.refused.items():
                if name not in plan.refused:
                    render.out().print(
                        f"kept {name}: {render.plural(count, 'pending row')}", markup=False
                    )
    if as_json:
        render.print_json(report.to_dict())
    elif not plan.dropped:
        render.note("nothing to drop")
    if report.refused:
        raise typer.Exit(1)
