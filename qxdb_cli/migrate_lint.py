"""``qxdb migrate lint``: the revisions that would lock or rewrite a busy table, before merge.

A thin shell over :mod:`qxdb.migrations.lint`: choose the revisions, call one library
function, render the report. Registered (with ``lint-rules``) on the ``migrate`` group by one import at the end of
:mod:`qxdb_cli.migrate`; imports only Typer until a command runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qxdb_cli import render
from qxdb_cli.common import (
    CheckFormat,
    CheckFormatOption,
    FormatJsonOption,
    IgnoreOption,
    RuleOption,
    github_escape_data,
    github_escape_property,
)
from qxdb_cli.migrate import ConfigOption, app

if TYPE_CHECKING:
    from qxdb.migrations.lint import LintFinding, LintReport


class FailOn(StrEnum):
    warning = "warning"
    error = "error"


@app.command("lint")
def lint(
    revision_range: Annotated[
        str | None,
        typer.Argument(
            metavar="REVISION_RANGE",
            help="REV (one revision) or START:END (after START up to END; START may be base).",
            show_default=False,
        ),
    ] = None,
    all_revisions: Annotated[bool, typer.Option("--all", help="Lint every revision.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="REV", help="Lint the revisions after REV.", show_default=False
        ),
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            metavar="PATH",
            help="Lint this revision file on its own, no project needed (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: CheckFormatOption = CheckFormat.table,
    as_json: FormatJsonOption = False,
    rules: RuleOption = None,
    ignores: IgnoreOption = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 on any finding (warning) or on errors only (error). "
            "Default: [tool.qxdb.lint] fail-on, else warning.",
            show_default=False,
        ),
    ] = None,
    pyproject: Annotated[
        Path | None,
        typer.Option(
            "--pyproject",
            help="pyproject.toml holding [tool.qxdb.lint]. Default: ./pyproject.toml if present.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check revisions for operations that lock or rewrite tables on PostgreSQL.

    Reads each revision's operations offline (no database). Without REVISION_RANGE, --all,
    --since or --file: the revisions the database has not applied yet, or every revision
    when no database is configured (QX_DB__URL unset). Exits 0 when clean, 1 on findings
    (errors only with --fail-on error; suppressed ones never count), 2 on bad input, 3 when
    a configured database cannot be reached.

    Example: qxdb migrate lint --since 3f2a9c1 --format github
    """
    import asyncio

    from qxdb.errors import DatabaseUnavailableError, ValidationError
    from qxdb.migrations.lint import lint_files, lint_pending, lint_revisions, load_lint_config

    chosen = [revision_range is not None, all_revisions, since is not None, bool(files)]
    if sum(chosen) > 1:
        raise ValidationError("give one of REVISION_RANGE, --all, --since or --file")
    from qxdb.conventions.findings import Severity

    lint_config = load_lint_config(pyproject).with_flags(
        only=rules or (),
        ignore=ignores or (),
        fail_on=Severity(fail_on.value) if fail_on else None,
    )
    if files:
        report = lint_files(files, lint_config=lint_config)
    elif any(chosen):
        report = lint_revisions(
            config=config,
            revision_range=revision_range,
            since=since,
            all_revisions=all_revisions,
            lint_config=lint_config,
        )
    else:
        from qxdb_cli.state import chosen_dialect, load_settings

        # With no database chosen, every revision is linted and nothing is opened: neither
        # the embedded default's absence nor the project's recorded dialect is in the way.
        settings = load_settings(config=config) if chosen_dialect() is not None else None
        if settings is not None:
            render.announce_database(settings)
        try:
            report = asyncio.run(
                lint_pending(config=config, settings=settings, lint_config=lint_config)
            )
        except DatabaseUnavailableError as exc:
            raise DatabaseUnavailableError(
                f"{exc.message} (to lint without it: --all or --since REV)"
            ) from None
        if report.note:
            render.note(f"qxdb: {report.note}; --since REV lints fewer")
    fmt = CheckFormat.json if as_json else output
    if fmt is CheckFormat.json:
        render.print_json(report.to_dict())
    elif fmt is CheckFormat.sarif:
        render.print_json(report.to_sarif())
    elif fmt is CheckFormat.github:
        _print_github(report)
    else:
        _print_table(report)
    if report.fails(report.fail_on):
        raise typer.Exit(1)


@app.command("lint-rules")
def lint_rules(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """List the migration lint rules: id, name, default severity, what it locks, the recipe.

    Example: qxdb migrate lint-rules --json
    """
    from qxdb.migrations.lint import RULES

    if as_json:
        render.print_json([r.to_dict() for r in RULES.values()])
        return
    console = render.out()
    for rule in RULES.values():
        console.print(
            f"{rule.id}  {rule.name}  {rule.severity or 'off'}: {rule.summary}", markup=False
        )
        console.print(f"        locks: {rule.locks}", markup=False)
        console.print(f"        safe:  {rule.recipe}", markup=False)


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _summary(report: LintReport) -> str:
    ignored = f"; {len(report.ignored)} ignored" if report.ignored else ""
    what = f"{_count(len(report.revisions), 'revision')}, {report.selection}"
    if not report.findings:
        return f"ok: no findings ({what}){ignored}"
    affected = len({f.revision for f in report.findings})
    return (
        f"{_count(len(report.errors), 'error')}, {_count(len(report.warnings), 'warning')} "
        f"in {affected} of {_count(len(report.revisions), 'revision')} "
        f"({report.selection}){ignored}"
    )


def _print_table(report: LintReport) -> None:
    console = render.out()
    by_revision: dict[str, list[LintFinding]] = {}
    for finding in report.findings:
        by_revision.setdefault(finding.revision, []).append(finding)
    for revision in report.revisions:
        findings = by_revision.get(revision.revision)
        if not findings:
            continue
        console.print(
            f"{revision.revision}  {_shown(revision.path)}  {revision.message}".rstrip(),
            style="bold",
            markup=False,
        )
        for f in findings:
            style = "red" if f.severity == "error" else "yellow"
            console.print(
                f"  line {f.line:<4} {f.severity:<7} {f.rule_id} {f.rule_name}: {f.message}",
                style=style,
                markup=False,
            )
            console.print(f"            locks: {f.locks}", markup=False)
            console.print(f"            safe:  {f.recipe}", markup=False)
    for f in report.ignored:
        console.print(
            f"ignored: {f.revision} line {f.line} {f.rule_id} {f.rule_name} ({f.ignored_reason})",
            style="dim",
            markup=False,
        )
    console.print(_summary(report), markup=False)


def _print_github(report: LintReport) -> None:
    import sys

    for f in report.findings:
        props = [
            f"file={github_escape_property(_shown(f.path))}",
            f"line={max(f.line, 1)}",
            f"title={github_escape_property(f'{f.rule_id} {f.rule_name}')}",
        ]
        message = f"{f.message}. Locks: {f.locks}. Safe: {f.recipe}"
        level = "error" if f.severity == "error" else "warning"
        sys.stdout.write(f"::{level} {','.join(props)}::{github_escape_data(message)}\n")
    sys.stdout.write(_summary(report) + "\n")
    sys.stdout.flush()
