"""``qxdb schema``: check models and live databases against qxdb's schema conventions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qxdb_cli import common, render
from qxdb_cli.common import (
    CheckFormat,
    CheckFormatOption,
    FormatJsonOption,
    IgnoreOption,
    JsonOption,
    RuleOption,
    github_escape_data,
    github_escape_property,
)

if TYPE_CHECKING:
    from qxdb.conventions import CheckReport, Finding, Rule

app = typer.Typer(help="Check tables against qxdb's schema conventions.", no_args_is_help=True)


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
    output: CheckFormatOption = CheckFormat.table,
    as_json: FormatJsonOption = False,
    rules: RuleOption = None,
    ignores: IgnoreOption = None,
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
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="FILE",
            help="Accept the findings recorded in FILE: only new ones fail; those that "
            "disappeared are listed so the file can shrink.",
            show_default=False,
        ),
    ] = None,
    write_baseline_to: Annotated[
        Path | None,
        typer.Option(
            "--write-baseline",
            metavar="FILE",
            help="Record every current finding in FILE (JSON, for version control) and exit 0.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check every table for qxdb's conventions; print findings grouped by table.

    With neither --metadata nor --database: the metadata named in pyproject.toml
    (tool.qxdb.schema), else the live database. Read-only. Exits 0 when clean (warnings
    allowed), 1 when a new finding has error severity, 2 on bad usage, 3 when the
    database cannot be reached.

    Example: qxdb schema check --database --baseline schema-baseline.json --format sarif
    """
    from qxdb.conventions import (
        apply_baseline,
        check_database,
        check_import_path,
        load_config,
        write_baseline,
    )
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
    if baseline is not None:
        apply_baseline(report, baseline)
    fmt = CheckFormat.json if as_json else output
    if fmt is CheckFormat.json:
        render.print_json(report.to_dict())
    elif fmt is CheckFormat.sarif:
        from qxdb.conventions import report_to_sarif

        render.print_json(report_to_sarif(report))
    elif fmt is CheckFormat.github:
        _print_github(report)
    else:
        _print_table(report)
    if write_baseline_to is not None:
        count = write_baseline(report, write_baseline_to)
        render.note(f"baseline: wrote {count} findings to {write_baseline_to}")
        return  # writing a baseline accepts the findings it records
    if not report.ok:
        raise typer.Exit(1)


@app.command("rules")
def rules_command(
    as_json: JsonOption = False,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            metavar="ID",
            help="Print one rule's documentation: why it matters, how to fix, how to configure.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List the rules (built-in and from installed plugins): id, name, default severity,
    where they apply, rationale and fix.

    Example: qxdb schema rules --explain QX016
    """
    from qxdb.conventions import all_rules, resolve_rule

    if explain is not None:
        rule = resolve_rule(explain, where="--explain")
        if as_json:
            render.print_json(rule.to_dict())
        else:
            _print_explanation(rule)
        return
    rules = all_rules()
    if as_json:
        render.print_json([r.to_dict() for r in rules.values()])
        return
    console = render.out()
    for rule in rules.values():
        console.print(f"{rule.id}  {rule.name}  {rule.severity}  [{_where(rule)}]", markup=False)
        console.print(f"       {rule.rationale}", markup=False)
        console.print(f"       fix: {rule.hint}", markup=False)


def _where(rule: Rule) -> str:
    where = ", ".join(sorted(rule.sources))
    scope = "" if rule.scope == "all" else f"; {rule.scope} tables only"
    origin = "" if rule.origin == "qxdb" else f"; from {rule.origin}"
    opt_in = "; opt-in: off unless configured" if rule.opt_in else ""
    return f"{where}{scope}{origin}{opt_in}"


def _print_explanation(rule: Rule) -> None:
    console = render.out()
    console.print(f"{rule.id} {rule.name}", style="bold", markup=False)
    console.print(f"default severity: {rule.severity}; applies to: {_where(rule)}", markup=False)
    console.print("", markup=False)
    console.print(rule.rationale, markup=False)
    console.print("", markup=False)
    if rule.doc:
        # Docstrings use reST literals (``x``); a terminal reads `x` better.
        console.print(rule.doc.replace("``", "`"), markup=False, soft_wrap=True)
    else:
        console.print(f"Fix: {rule.hint}", markup=False)
    console.print("", markup=False)
    console.print(
        "Configure (pyproject.toml):\n"
        f'  [tool.qxdb.schema.rules]          {rule.id} = "off" | "info" | "warning" | "error"\n'
        f'  [tool.qxdb.schema.ignore.TABLE]   {rule.id} = "the reason"\n'
        f"On the command line: --rule {rule.id} (run only it), --ignore {rule.id} (turn it off).",
        markup=False,
        soft_wrap=True,
    )


def _summary(report: CheckReport) -> str:
    p = render.plural
    affected = len({f.table for f in report.findings})
    extra = ""
    if report.baseline_file is not None:
        extra += f"; {len(report.baselined):,} in baseline"
        if report.gone:
            extra += f", {len(report.gone):,} gone"
    if report.ignored:
        extra += f"; {len(report.ignored):,} ignored"
    what = (
        f"{p(len(report.tables), 'table')}, {p(len(report.rules), 'rule')}, "
        f"{report.source} {report.target}"
    )
    if not report.findings:
        new = "new " if report.baseline_file is not None else ""
        return f"ok: no {new}findings ({what}){extra}"
    info = f", {len(report.infos)} info" if report.infos else ""
    return (
        f"{p(len(report.errors), 'error')}, {p(len(report.warnings), 'warning')}{info} "
        f"in {p(affected, 'table')} ({what}){extra}"
    )


_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def _print_table(report: CheckReport) -> None:
    console = render.out()
    for table, findings in report.by_table():
        console.print(table, style="bold", markup=False)
        for f in findings:
            style = _STYLE.get(f.severity, "")
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
    for entry in report.gone:
        subject = f" {entry['subject']}" if entry["subject"] else ""
        console.print(
            f"gone from baseline: {entry['table']} {entry['rule_id']}{subject}: {entry['message']}",
            style="green",
            markup=False,
        )
    if report.gone:
        console.print(
            f"(shrink the baseline: qxdb schema check … --write-baseline {report.baseline_file})",
            markup=False,
        )
    console.print(_summary(report), markup=False)


_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def _annotation(report: CheckReport, finding: Finding) -> str:
    level = _GITHUB_LEVEL.get(finding.severity, "warning")
    props = []
    if report.source_file:
        props.append(f"file={github_escape_property(report.source_file)}")
    props.append(
        f"title={github_escape_property(f'{finding.rule_id} {finding.rule_name} ({finding.table})')}"
    )
    message = f"{finding.table}: {finding.message}. Hint: {finding.hint}"
    return f"::{level} {','.join(props)}::{github_escape_data(message)}"


def _print_github(report: CheckReport) -> None:
    import sys

    for finding in report.findings:
        sys.stdout.write(_annotation(report, finding) + "\n")
    sys.stdout.write(_summary(report) + "\n")
    sys.stdout.flush()
