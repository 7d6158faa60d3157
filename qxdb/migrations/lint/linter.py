"""Lint a project's revisions (or loose revision files): the functions behind the command."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from qxdb.errors import Error, ValidationError
from qxdb.migrations.lint.checks import History, Hit, check_actions
from qxdb.migrations.lint.config import LintConfig
from qxdb.migrations.lint.recorder import OfflineRecorder
from qxdb.migrations.lint.report import LintFinding, LintReport, RevisionLint
from qxdb.migrations.lint.rules import RULES
from qxdb.migrations.lint.suppress import read_suppressions

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

    from qxdb.settings import DatabaseSettings

__all__ = ["lint_files", "lint_pending", "lint_revisions"]


@dataclass(frozen=True, slots=True)
class _Unit:
    revision: str
    path: str
    message: str
    module: ModuleType
    parents: tuple[str, ...]


def _lint_unit(
    unit: _Unit,
    history: History,
    config: LintConfig,
    report: LintReport,
    recorder: OfflineRecorder,
    *,
    emit_sql: bool,
) -> None:
    recording = recorder.record(unit.module, unit.path)
    hits = check_actions(
        recording.actions, history, lock_timeout_set=report.lock_timeout_source is not None
    )
    if recording.failure:
        hits.append(Hit("QXM025", recording.failure_line, unit.revision, recording.failure))
    try:
        source = Path(unit.path).read_text(encoding="utf-8")
    except OSError:
        source = ""
    suppressions = read_suppressions(source)
    hits.extend(Hit("QXM024", line, comment, what) for line, comment, what in suppressions.problems)
    seen: set[tuple[str, int, str]] = set()
    for hit in sorted(hits, key=lambda h: (h.line, h.rule_id)):
        rule = RULES[hit.rule_id]
        severity = config.severity(rule)
        if severity is None or (hit.rule_id, hit.line, hit.subject) in seen:
            continue
        seen.add((hit.rule_id, hit.line, hit.subject))
        reason = None if hit.rule_id == "QXM024" else suppressions.reason(rule.id, hit.line)
        detail = f" ({hit.detail})" if hit.detail else ""
        finding = LintFinding(
            rule_id=rule.id,
            rule_name=rule.name,
            severity=severity,
            revision=unit.revision,
            path=unit.path,
            line=hit.line,
            message=f"{rule.summary}: {hit.subject}{detail}",
            locks=rule.locks,
            recipe=rule.recipe,
            subject=hit.subject,
            ignored_reason=reason,
        )
        (report.ignored if reason else report.findings).append(finding)
    report.revisions.append(
        RevisionLint(
            unit.revision,
            unit.path,
            unit.message,
            len(recording.actions),
            recording.sql if emit_sql else None,
        )
    )


def _run(
    units: Sequence[_Unit],
    selected: set[str],
    config: LintConfig,
    selection: str,
    *,
    emit_sql: bool,
    lock_timeout_source: str | None = None,
) -> LintReport:
    """Lint ``selected`` among ``units`` (base first); the others only build the history."""
    report = LintReport(
        selection=selection,
        rules=config.active_rules(),
        config_path=config.path,
        fail_on=config.fail_on,
        lock_timeout_source=lock_timeout_source,
    )
    histories: dict[str, History] = {}
    recorder = OfflineRecorder(emit_sql=emit_sql)
    wanted = _with_ancestors(units, selected)
    for unit in units:
        if unit.revision not in wanted:
            continue
        history = History()
        for parent in unit.parents:
            if parent in histories:
                history.merge(histories[parent])
        if unit.revision in selected:
            _lint_unit(unit, history, config, report, recorder, emit_sql=emit_sql)
        else:
            # Applied revisions count only for what they establish, not for findings.
            check_actions(recorder.record(unit.module, unit.path).actions, history)  # history only
        histories[unit.revision] = history
    return report


def _with_ancestors(units: Sequence[_Unit], selected: set[str]) -> set[str]:
    parents = {u.revision: u.parents for u in units}
    wanted: set[str] = set()
    todo = list(selected)
    while todo:
        rev = todo.pop()
        if rev in wanted:
            continue
        wanted.add(rev)
        todo.extend(parents.get(rev, ()))
    return wanted


# -- loose files --------------------------------------------------------------------------


def _load_file(path: Path) -> ModuleType:
    name = f"_qxdb_lint_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ValidationError(f"cannot import {path}: {type(exc).__name__}: {exc}") from None
    return module


def lint_files(
    paths: Iterable[str | Path],
    *,
    lint_config: LintConfig | None = None,
    emit_sql: bool = False,
) -> LintReport:
    """Lint revision files on their own (no Alembic project, no database), each independently."""
    units: list[_Unit] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ValidationError(f"revision file {path} does not exist")
        module = _load_file(path)
        revision = str(getattr(module, "revision", None) or path.stem)
        units.append(
            _Unit(revision, str(path), (module.__doc__ or "").strip().split("\n")[0], module, ())
        )
    return _run(
        units,
        {u.revision for u in units},
        lint_config or LintConfig(),
        "files",
        emit_sql=emit_sql,
    )


# -- a project ------------------------------------------------------------------------------


def _script_directory(config: str | Path | None) -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from qxdb.migrations.project import find_config
    from qxdb.migrations.runner import alembic_errors

    cfg = Config(str(find_config(config)))
    with alembic_errors():
        return ScriptDirectory.from_config(cfg)


def _lock_timeout_source(script: ScriptDirectory) -> str | None:
    """Where the migration connection gets a lock_timeout from, if the project says so.

    An env.py that runs migrations through qxdb (:func:`qxdb.migrations.env.run_async_migrations`)
    runs every revision with a PostgreSQL lock_timeout, so QXM022 does not ask for one.
    """
    env = Path(script.dir) / "env.py"
    try:
        text = env.read_text(encoding="utf-8")
    except OSError:
        return None
    return f"{env.name}: qxdb run_async_migrations" if "run_async_migrations" in text else None


def _units(script: ScriptDirectory) -> list[_Unit]:
    from alembic.util import to_tuple

    from qxdb.migrations.runner import alembic_errors

    try:
        with alembic_errors():
            newest_first: list[Script] = list(script.walk_revisions())
    except Error:
        raise
    except Exception as exc:  # a revision file that does not import: bad input, exit 2
        raise ValidationError(
            f"cannot load the revisions: {type(exc).__name__}: {exc}".strip()
        ) from None
    return [
        _Unit(
            s.revision,
            s.path,
            (s.doc or "").strip(),
            s.module,
            tuple(str(r) for r in to_tuple(s.down_revision, default=())),
        )
        for s in reversed(newest_first)
    ]


def _resolve(script: ScriptDirectory, ref: str) -> list[str]:
    from qxdb.migrations.runner import alembic_errors

    with alembic_errors():
        found: Any = script.get_revisions(ref)
    if not found:
        raise ValidationError(f"no revision {ref!r} in this project")
    return [s.revision for s in found if s is not None]


def _between(script: ScriptDirectory, units: Sequence[_Unit], lower: str, upper: str) -> set[str]:
    """Revisions after ``lower`` (exclusive; ``base``: from the start) up to ``upper``.

    "After" means descended from: on a project with branches, ``--since REV`` is REV's
    descendants, not every revision that REV's branch has not seen.
    """
    parents = {u.revision: u.parents for u in units}
    children: dict[str, list[str]] = {}
    for rev, ups in parents.items():
        for parent in ups:
            children.setdefault(parent, []).append(rev)
    if lower in {"", "base"}:
        after = set(parents)
    else:
        after = set()
        todo = [c for rev in _resolve(script, lower) for c in children.get(rev, [])]
        while todo:
            rev = todo.pop()
            if rev not in after:
                after.add(rev)
                todo.extend(children.get(rev, []))
    if upper in {"head", "heads"}:
        return after
    return after & _with_ancestors(units, set(_resolve(script, upper)))


def lint_revisions(
    *,
    config: str | Path | None = None,
    revision_range: str | None = None,
    since: str | None = None,
    all_revisions: bool = False,
    applied: Sequence[str] | None = None,
    lint_config: LintConfig | None = None,
    emit_sql: bool = False,
) -> LintReport:
    """Lint the project's revisions offline (no database is opened).

    Choose one: ``all_revisions``; ``since`` (the revisions after REV up to the heads);
    ``revision_range`` (``REV`` for one revision, ``A:B`` for those after A up to B, ``base``
    allowed for A); or ``applied`` (the database's current revisions: lint those not yet
    applied — :func:`lint_pending` reads them for you).
    """
    chosen = [all_revisions, since is not None, revision_range is not None, applied is not None]
    if sum(chosen) != 1:
        raise ValidationError(
            "choose one of: a revision range, --since REV, --all (or the pending revisions)"
        )
    script = _script_directory(config)
    units = _units(script)
    if all_revisions:
        selected, selection = {u.revision for u in units}, "all"
    elif since is not None:
        selected, selection = _between(script, units, since, "heads"), f"since {since}"
    elif revision_range is not None:
        text = revision_range.strip()
        if not text:
            raise ValidationError("empty revision range: give REV or START:END")
        if ":" in text:
            lower, _, upper = text.partition(":")
            selected = _between(script, units, lower.strip(), upper.strip() or "heads")
        else:
            selected = set(_resolve(script, text))
        selection = text
    else:
        current = list(applied or [])
        selected = {u.revision for u in units} if not current else set()
        if current:
            for rev in current:
                _resolve(script, rev)
            from qxdb.migrations.runner import alembic_errors

            with alembic_errors():
                pending = script.iterate_revisions("heads", tuple(current), implicit_base=True)
                selected = {s.revision for s in pending if s is not None} - set(current)
        selection = "pending"
    return _run(
        units,
        selected,
        lint_config or LintConfig(),
        selection,
        emit_sql=emit_sql,
        lock_timeout_source=_lock_timeout_source(script),
    )


async def lint_pending(
    *,
    config: str | Path | None = None,
    settings: DatabaseSettings | None = None,
    lint_config: LintConfig | None = None,
) -> LintReport:
    """Lint the revisions the database has not applied yet (reads its current revisions).

    With no database configured (``QX_DB__URL`` unset: the embedded SQLite default), every
    revision is linted instead, nothing is opened or created, and ``report.note`` says so.
    """
    from qxdb.migrations.runner import current
    from qxdb.settings import DatabaseSettings

    settings = settings or DatabaseSettings()
    if settings.url_is_default:
        report = lint_revisions(config=config, all_revisions=True, lint_config=lint_config)
        report.note = (
            "no database configured (QX_DB__URL unset): linted all "
            f"{len(report.revisions)} revision(s)"
        )
        return report
    state = await current(config=config, settings=settings)
    applied = [r.revision for r in state.current]
    if state.unknown:
        raise ValidationError(
            f"the database is at revision(s) this project does not have: {', '.join(state.unknown)}"
        )
    return lint_revisions(config=config, applied=applied, lint_config=lint_config)
