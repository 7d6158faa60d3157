"""``qxdb demo``: the first five minutes, on the embedded database or a given URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qxdb.core import defaults
from qxdb_cli import common, render

if TYPE_CHECKING:
    from qxdb.demo import DemoStep


def demo(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", help="Workspace folder for the example service (created if missing)."
        ),
    ] = Path("qxdb-demo"),
    orders: Annotated[
        int, typer.Option("--orders", min=1, max=1000, help="How many orders to place.")
    ] = defaults.DEMO_ORDERS,
) -> None:
    """Write an example service into a workspace and run every part of qxdb on it.

    Scaffolds migrations, autogenerates and applies the first revision, places orders
    through the unit of work (filling the outbox), shows outbox stats and rows, pages
    orders with a keyset cursor and decodes it, and checks the schema conventions. Runs
    on an embedded SQLite file in the workspace unless --database-url is given; running
    it again reuses the workspace.

    Example: qxdb demo --dir /tmp/shop-demo
    """
    from qxdb.demo import run_demo
    from qxdb.urls import async_driver_url, display_url
    from qxdb_cli.state import state

    url = state.database_url
    if url:
        url, read_as = async_driver_url(url)
        if read_as is not None:
            render.note(f"note: {read_as}")
        render.note(f"database: {display_url(url)}")
    else:
        render.note(
            f"database: embedded SQLite file {directory / 'qxdb.sqlite3'} (no --database-url given)"
        )
    report = common.run(
        run_demo(directory, url=url, orders=orders, on_step=_show),
        interrupted=f"the workspace {directory} may be half built; run qxdb demo again to "
        "finish it (it reuses the workspace)",
    )
    out = render.out()
    out.print()
    out.print("[bold]Try next[/bold] (the workspace is configured for these):")
    for command in report.next_commands:
        out.print(f"  {command}", markup=False, highlight=False)


def _show(step: DemoStep) -> None:
    out = render.out()
    out.print()
    out.print(f"[bold cyan]▸ {step.title}[/bold cyan]")
    renderer = _RENDERERS.get(step.name)
    if renderer is not None and step.data is not None:
        renderer(step.data)


def _files(files: list[str]) -> None:
    for name in files:
        render.out().print(f"  wrote {name}", markup=False)


def _revision(created: Any) -> None:
    for change in created.changes[:12]:
        render.out().print(f"  {change.message}", markup=False)


def _run(run: Any) -> None:
    if not run.steps:
        render.out().print("  already at head: nothing to apply", markup=False)
    for applied in run.steps:
        render.out().print(
            f"  {applied.direction} {applied.revision}  {applied.message}", markup=False
        )


def _check(report: Any) -> None:
    if report.ok:
        render.out().print(f"  ok: at head {', '.join(report.heads)}, no differences", markup=False)
    for problem in report.problems:
        render.out().print(f"  problem: {problem}", markup=False)


def _stats(stats: Any) -> None:
    render.print_stats(stats, exact=False)


def _rows(page: Any) -> None:
    render.print_table(render.outbox_rows_table(page.rows))


def _orders_page(page: Any) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "total", "note", "status"):
        table.add_column(column, no_wrap=column == "id")
    for order in page.items:
        table.add_row(str(order.id), str(order.total), order.note or "NULL", order.status)
    render.out().print(table)
    render.out().print(
        f"  has next: {page.has_next}, has previous: {page.has_previous}", markup=False
    )


def _cursor(data: Any) -> None:
    token = data["token"]
    render.out().print(f"  token: {token[:60]}{'…' if len(token) > 60 else ''}", markup=False)
    for name, value in data["values"].items():
        render.out().print(f"  {name} = {value!r} ({type(value).__name__})", markup=False)


def _schema(report: Any) -> None:
    findings = list(getattr(report, "findings", []))
    if not findings:
        render.out().print("  ok: every table follows the conventions", markup=False)
    for finding in findings[:10]:
        render.out().print(f"  {finding.rule_id} {finding.table}: {finding.message}", markup=False)


_RENDERERS: dict[str, Any] = {
    "workspace": _files,
    "migrate-init": _files,
    "migrate-revision": _revision,
    "migrate-up": _run,
    "migrate-check": _check,
    "outbox-stats": _stats,
    "outbox-inspect": _rows,
    "keyset-page": _orders_page,
    "keyset-page-2": _orders_page,
    "cursor-decode": _cursor,
    "schema-models": _schema,
    "schema-database": _schema,
}
