"""``qxdb doctor``: is the database reachable, and what is in it?"""

from __future__ import annotations

from qxdb_cli import common, render
from qxdb_cli.common import JsonOption


def doctor(as_json: JsonOption = False) -> None:
    """Connect and report the dialect, server version, URL (password hidden), pool and tables.

    Read-only. Warnings (e.g. unsigned cursors) go to stderr and do not change the exit
    code. Exits 3 with one line when the database cannot be reached.

    Example: qxdb --database-url postgresql+asyncpg://app@db/app doctor --json
    """
    from qxdb.doctor import diagnose
    from qxdb_cli.state import load_settings

    settings = load_settings()
    render.announce_database(settings)
    report = common.run(diagnose(settings))
    if as_json:
        render.print_json(report.to_dict())
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row(
        "database", report.url + ("  (embedded default)" if report.url_is_default else "")
    )
    table.add_row("dialect", f"{report.dialect} ({report.driver})")
    table.add_row("server version", report.server_version)
    table.add_row("pool", ", ".join(f"{k}={v}" for k, v in report.pool.items()))
    if report.statement_timeout_ms is not None:
        table.add_row("statement timeout", f"{report.statement_timeout_ms} ms")
    table.add_row(
        "outbox table",
        f"{report.outbox_table} ({'present' if report.outbox_table_exists else 'missing'})",
    )
    alembic = "present" if report.alembic_version_table_exists else "missing"
    if report.alembic_revision:
        alembic += f", at {', '.join(report.alembic_revision)}"
    table.add_row("alembic_version", alembic)
    table.add_row("cursors", "signed" if report.cursors_signed else "unsigned")
    render.out().print(table)
    for warning in report.warnings:
        render.note(f"warning: {warning}")
    render.out().print("ok: the database answered", markup=False)
