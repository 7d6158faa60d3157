"""What a check found: one :class:`Finding` per broken convention, gathered in a report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CheckReport", "Finding", "Severity"]


class Severity(StrEnum):
    """``error`` fails the check (exit 1); ``warning`` and ``info`` are reported and pass.

    ``info`` is for facts worth a look that are not defects by themselves (an index no
    query has used since the statistics were reset).
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    rule_name: str
    severity: Severity
    table: str
    message: str
    hint: str
    # The column, constraint or index the finding is about, where there is one.
    subject: str | None = None
    # Set when configuration or Table.info silenced the finding; it then never fails a check.
    ignored_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data


@dataclass(slots=True)
class CheckReport:
    """The result of one check: findings by table, plus what was silenced and why."""

    source: str  # "metadata", "postgresql" or "sqlite"
    target: str  # the import path, or the database URL without its password
    tables: list[str]
    rules: list[str]
    findings: list[Finding] = field(default_factory=list)
    ignored: list[Finding] = field(default_factory=list)
    # File that defines the checked metadata, for annotations; None for a live database.
    source_file: str | None = None
    # With a baseline: findings it already records (they never fail a check), and the
    # entries that no longer occur (so the baseline can shrink).
    baseline_file: str | None = None
    baselined: list[Finding] = field(default_factory=list)
    gone: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.INFO]

    @property
    def ok(self) -> bool:
        """True when nothing at error severity was found."""
        return not self.errors

    def by_table(self) -> Iterator[tuple[str, list[Finding]]]:
        grouped: dict[str, list[Finding]] = {}
        for finding in self.findings:
            grouped.setdefault(finding.table, []).append(finding)
        for table in sorted(grouped):
            yield table, grouped[table]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "source_file": self.source_file,
            "ok": self.ok,
            "tables_checked": len(self.tables),
            "rules": self.rules,
            "counts": {
                "error": len(self.errors),
                "warning": len(self.warnings),
                "info": len(self.infos),
                "ignored": len(self.ignored),
            },
            "findings": [f.to_dict() for f in self.findings],
            "ignored": [f.to_dict() for f in self.ignored],
        }
        if self.baseline_file is not None:
            data["baseline"] = {
                "file": self.baseline_file,
                "matched": [f.to_dict() for f in self.baselined],
                "gone": list(self.gone),
            }
        return data
