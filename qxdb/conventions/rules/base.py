"""What a rule is, what it sees while it runs, and the registry of all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.engine import Dialect

from qxdb.conventions.findings import Severity
from qxdb.conventions.snapshot import TableSnapshot

__all__ = ["CheckContext", "Rule", "Scope", "Source", "Violation", "registry", "rule"]

Source = Literal["metadata", "postgresql", "sqlite"]
ALL_SOURCES: frozenset[Source] = frozenset({"metadata", "postgresql", "sqlite"})
# "entity": tables holding domain rows; the outbox is a log with its own shape rule.
Scope = Literal["all", "entity", "outbox"]


@dataclass(frozen=True, slots=True)
class Violation:
    message: str
    subject: str | None = None


@dataclass(slots=True)
class CheckContext:
    source: Source
    dialect: Dialect
    tables: Mapping[str, TableSnapshot]
    naming: Mapping[str, str]
    outbox_reference: Callable[[str], TableSnapshot]
    _cache: dict[str, TableSnapshot] = field(default_factory=dict)

    def outbox_shape(self, name: str) -> TableSnapshot:
        if name not in self._cache:
            self._cache[name] = self.outbox_reference(name)
        return self._cache[name]


Check = Callable[[TableSnapshot, CheckContext], Iterable[Violation]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    severity: Severity
    rationale: str
    hint: str
    sources: frozenset[Source]
    scope: Scope
    check: Check = field(repr=False, compare=False)

    def applies_to(self, table: TableSnapshot, source: Source) -> bool:
        if source not in self.sources:
            return False
        if self.scope == "entity":
            return not table.is_outbox
        if self.scope == "outbox":
            return table.is_outbox
        return True

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "severity": str(self.severity),
            "rationale": self.rationale,
            "hint": self.hint,
            "sources": sorted(self.sources),
            "scope": self.scope,
        }


registry: dict[str, Rule] = {}


def rule(
    id: str,
    name: str,
    *,
    rationale: str,
    hint: str,
    severity: Severity = Severity.ERROR,
    sources: Iterable[Source] = ALL_SOURCES,
    scope: Scope = "all",
) -> Callable[[Check], Check]:
    """Register a check under a stable id; ids are never reused or renumbered."""

    def register(check: Check) -> Check:
        if id in registry:
            raise RuntimeError(f"rule id {id} registered twice")
        registry[id] = Rule(id, name, severity, rationale, hint, frozenset(sources), scope, check)
        return check

    return register
