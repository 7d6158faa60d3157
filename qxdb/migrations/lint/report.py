"""What ``lint`` found: findings with their revision, file and line, and the SARIF form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qxdb.conventions.findings import Severity

if TYPE_CHECKING:
    from qxdb.sarif import Level, SarifResult

__all__ = ["LintFinding", "LintReport", "RevisionLint"]


@dataclass(frozen=True, slots=True)
class LintFinding:
    rule_id: str
    rule_name: str
    severity: Severity
    revision: str
    path: str  # the revision file
    line: int  # 1-based line of the operation (0: the file as a whole)
    message: str
    locks: str  # what it locks or rewrites
    recipe: str  # the safe way
    subject: str
    ignored_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "severity": str(self.severity),
            "revision": self.revision,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "subject": self.subject,
            "locks": self.locks,
            "recipe": self.recipe,
            "ignored_reason": self.ignored_reason,
        }


@dataclass(slots=True)
class RevisionLint:
    revision: str
    path: str
    message: str
    operations: int
    # Alembic's offline SQL for the revision, when asked for (emit_sql=True).
    sql: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "path": self.path,
            "message": self.message,
            "operations": self.operations,
        }


@dataclass(slots=True)
class LintReport:
    selection: str  # "all", "pending", "since REV", "A:B", "files"
    rules: list[str]
    revisions: list[RevisionLint] = field(default_factory=list)
    findings: list[LintFinding] = field(default_factory=list)
    ignored: list[LintFinding] = field(default_factory=list)
    config_path: str | None = None
    fail_on: Severity = Severity.WARNING  # from [tool.qxdb.lint] fail-on
    note: str | None = None  # how the revisions were chosen, when it needs saying
    # Set when the project's env.py gives migrations a lock_timeout (QXM022 is then met).
    lock_timeout_source: str | None = None

    @property
    def errors(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """True when nothing was found (suppressed findings aside)."""
        return not self.findings

    def fails(self, fail_on: Severity = Severity.WARNING) -> bool:
        """Does a finding reach ``fail_on``? (``warning``: warnings and errors; ``error``:
        errors only; a lower severity, where one exists, never fails.)"""
        floor = _RANK.get(str(fail_on), 1)
        return any(_RANK.get(str(f.severity), 0) >= floor for f in self.findings)

    def for_revision(self, revision: str) -> list[LintFinding]:
        return [f for f in self.findings if f.revision == revision]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.fails(self.fail_on),
            "fail_on": str(self.fail_on),
            "selection": self.selection,
            "note": self.note,
            "lock_timeout_source": self.lock_timeout_source,
            "rules": self.rules,
            "config": self.config_path,
            "revisions": [r.to_dict() for r in self.revisions],
            "counts": {
                "revisions": len(self.revisions),
                "error": len(self.errors),
                "warning": len(self.warnings),
                "ignored": len(self.ignored),
            },
            "findings": [f.to_dict() for f in self.findings],
            "ignored": [f.to_dict() for f in self.ignored],
        }

    def to_sarif(self, *, base: Path | None = None) -> dict[str, Any]:
        """A SARIF 2.1.0 log for code-scanning UIs; paths relative to ``base`` (default: cwd)."""
        from qxdb.migrations.lint.rules import RULES
        from qxdb.sarif import SarifRule, sarif_log

        root = (base or Path.cwd()).resolve()
        reported = [*self.findings, *self.ignored]
        rules = []
        for rule_id in sorted({f.rule_id for f in reported}):
            rule = RULES[rule_id]
            rules.append(
                SarifRule(
                    rule.id,
                    rule.name,
                    short_description=rule.summary,
                    full_description=f"{rule.why} Locks: {rule.locks}.",
                    help=f"Safe recipe: {rule.recipe} (qxdb docs/migrate.md, Lint)",
                    level=_level(rule.severity or Severity.WARNING),
                )
            )
        return sarif_log(
            tool="qxdb migrate lint",
            rules=rules,
            results=[_result(f, root) for f in reported],
            column_kind="unicodeCodePoints",
        )


_RANK = {"error": 2, "warning": 1}


def _level(severity: Severity) -> Level:
    from qxdb.sarif import sarif_level

    return sarif_level(str(severity))


def _uri(path: str, root: Path) -> str:
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        return resolved.as_uri()


def _result(finding: LintFinding, root: Path) -> SarifResult:
    from qxdb.sarif import SarifLocation, SarifResult

    return SarifResult(
        finding.rule_id,
        _level(finding.severity),
        f"{finding.message}. Locks: {finding.locks}. Safe recipe: {finding.recipe}",
        (SarifLocation(uri=_uri(finding.path, root), line=finding.line),),
        suppression=finding.ignored_reason,
        suppression_kind="inSource",
        properties={"revision": finding.revision, "subject": finding.subject},
    )
