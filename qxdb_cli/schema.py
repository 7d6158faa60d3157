"""``qxdb schema``: check models and live databases against qxdb's schema conventions."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qxdb_cli import common, render
from qxdb_cli.common import JsonOption

if TYPE_CHECKING:
    from qxdb.conventions import CheckReport, Finding

app = typer.Typer(help="Check tables against qxdb's schema conventions.", no_args_is_help=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    github = "github"


@app.command("check")
def check(
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata",
            metavar="PKG.MOD:ATTR",
            help="Check the models: a MetaData (or an object with .metadata) to import.",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        bool,
        typer.Option("--database", help="Check the live database (--database-url / QX_DB__URL)."),
    ] = False,
    output: Annotated[
        OutputFormat,
        typer.Option("--format", help="table for people, json for programs, github for CI."),
    ] = OutputFormat.table,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "--rule", metavar="ID", help="Run only this rule (repeatable).", show_default=False
        ),
    ] = None,
    ignores: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore", metavar="ID", help="Turn this rule off (repeatable).", show_default=False
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            help="With --database: the schema to reflect. Default: the connection's default.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="pyproject.toml holding tool.qxdb.schema settings. Default: ./pyproject.toml if present.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check every table for qxdb's conventions; print findings grouped by table.

    With neither --metadata nor --database: the metadata named in pyproject.toml
    (tool.qxdb.schema), else the live database. Read-only. Exits 0 when clean (warnings
    allowed), 1 when a finding has error severity, 2 on bad usage, 3 when the database
    cannot be reached.

    Example: qxdb schema check --metadata myservice.db:metadata --format github
    """
    from qxdb.conventions import check_database, check_import_path, load_config
    from qxdb.errors import ValidationError

    if metadata and database:
        raise ValidationError("give --metadata or --database, not both")
    settings_config = load_config(config).with_flags(only=rules or (), ignore=ignores or ())
    import_path = metadata or (None if database else settings_config.metadata)
    if import_path:
        source = f" (from {settings_config.path})" if not metadata and settings_config.path else ""
        # Named once it imported: a bad import path stays one error line.
        report = check_import_path(import_path, settings_config)
        render.note(f"metadata: {import_path}{source}")
    else:
        from qxdb_cli.state import load_settings

        settings = load_settings()
        render.announce_database(settings)
        report = common.run(check_database(settings, settings_config, schema=schema))
    if not report.tables:
        render.note("note: no tables to check (an empty database or metadata, or all skipped)")
    fmt = OutputFormat.json if as_json else output
    if fmt is OutputFormat.json:
        render.print_json(report.to_dict())
    elif fmt is OutputFormat.github:
        _print_github(report)
    else:
        _print_table(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("rules")
def rules_command(as_json: JsonOption = False) -> None:
    """List the rules: id, name, default severity, where they apply, rationale and fix.

    Example: qxdb schema rules --json
    """
    from qxdb.conventions import RULES

    if as_json:
        render.print_json([r.to_dict() for r in RULES.values()])
        return
    console = render.out()
    for rule in RULES.values():
        where = ", ".join(sorted(rule.sources))
        scope = "" if rule.scope == "all" else f"; {rule.scope} tables only"
        console.print(f"{rule.id}  {rule.name}  {rule.severity}  [{where}{scope}]", markup=False)
        console.print(f"       {rule.rationale}", markup=False)
        console.print(f"       fix: {rule.hint}", markup=False)


def _summary(report: CheckReport) -> str:
    p = render.plural
    affected = len({f.table for f in report.findings})
    ignored = f"; {len(report.ignored):,} ignored" if report.ignored else ""
    what = (
        f"{p(len(report.tables), 'table')}, {p(len(report.rules), 'rule')}, "
        f"{report.source} {report.target}"
    )
    if not report.findings:
        return f"ok: no findings ({what}){ignored}"
    return (
        f"{p(len(report.errors), 'error')}, {p(len(report.warnings), 'warning')} "
        f"in {p(affected, 'table')} ({what}){ignored}"
    )


def _print_table(report: CheckReport) -> None:
    console = render.out()
    for table, findings in report.by_table():
        console.print(table, style="bold", markup=False)
        for f in findings:
            style = "red" if f.severity == "error" else "yellow"
            console.print(
                f"  {f.severity:<8} {f.rule_id} {f.rule_name}: {f.message}",
                style=style,
                markup=False,
            )
            console.print(f"           hint: {f.hint}", markup=False)
    for f in report.ignored:
        console.print(
            f"ignored: {f.table} {f.rule_id} {f.rule_name}: {f.message} ({f.ignored_reason})",
            style="dim",
            markup=False,
        )
    console.print(_summary(report), markup=False)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(report: CheckReport, finding: Finding) -> str:
    level = "error" if finding.severity == "error" else "warning"
    props = []
    if report.source_file:
        props.append(f"file={_escape_property(report.source_file)}")
    props.append(
        f"title={_escape_property(f'{finding.rule_id} {finding.rule_name} ({finding.table})')}"
    )
    message = f"{finding.table}: {finding.message}. Hint: {finding.hint}"
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def _print_github(report: CheckReport) -> None:
    import sys

    for finding in report.findings:
        sys.stdout.write(_annotation(report, finding) + "\n")
    sys.stdout.write(_summary(report) + "\n")
    sys.stdout.flush()
