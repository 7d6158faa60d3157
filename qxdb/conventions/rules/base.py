"""What a rule is, what it sees while it runs, and the registry of all of them."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.engine import Connection, Dialect

from qxdb.conventions.catalog import Catalog
from qxdb.conventions.findings import Severity
from qxdb.conventions.snapshot import TableSnapshot

__all__ = [
    "CheckContext",
    "Rule",
    "Scope",
    "Source",
    "Violation",
    "define_rule",
    "registry",
    "rule",
]

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
    # What only a live PostgreSQL's catalog knows (index validity, sequences, statistics);
    # None for a model or SQLite. Rules limited to the "postgresql" source may rely on it.
    catalog: Catalog | None = None
    # The live connection (read-only use), for plugin rules that ask their own questions.
    connection: Connection | None = None
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
    # Longer documentation for `qxdb schema rules --explain` (the check's docstring).
    doc: str = ""
    # "qxdb" for built-in rules; the distribution that provides a plugin rule.
    origin: str = "qxdb"
    # Off unless the project's configuration (or --rule) turns it on: a rule about a
    # choice only some projects make (row-level security).
    opt_in: bool = False

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
            "origin": self.origin,
            "opt_in": self.opt_in,
            "doc": self.doc,
        }


registry: dict[str, Rule] = {}

# QX015, ACME001, ACME-DB-7: letters, then anything of letters, digits, - and _.
RULE_ID = re.compile(r"^[A-Z][A-Z0-9_-]*$")
RULE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def define_rule(
    id: str,
    name: str,
    *,
    rationale: str,
    hint: str,
    severity: Severity = Severity.ERROR,
    sources: Iterable[Source] = ALL_SOURCES,
    scope: Scope = "all",
    opt_in: bool = False,
) -> Callable[[Check], Rule]:
    """Make a :class:`Rule` from a check function; its docstring is the rule's
    ``--explain`` documentation. Plugins expose the result through the
    ``qxdb.schema_rules`` entry point group; nothing is registered here.

    ::

        @define_rule("ACME001", "no-tmp-tables", rationale="...", hint="...")
        def no_tmp_tables(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
            if table.name.startswith("tmp_"):
                yield Violation(f"{table.name} looks like a leftover temporary table")
    """
    if not RULE_ID.match(id):
        raise ValueError(f"rule id {id!r} must be upper case letters, digits, - or _")
    if not RULE_NAME.match(name):
        raise ValueError(f"rule name {name!r} must be lower-case-with-dashes")
    unknown = set(sources) - ALL_SOURCES
    if unknown:
        raise ValueError(
            f"rule {id}: unknown sources {sorted(unknown)} (known: {sorted(ALL_SOURCES)})"
        )

    def make(check: Check) -> Rule:
        return Rule(
            id,
            name,
            Severity(severity),
            rationale,
            hint,
            frozenset(sources),
            scope,
            check,
            doc=inspect.cleandoc(check.__doc__ or ""),
            opt_in=opt_in,
        )

    return make


def rule(
    id: str,
    name: str,
    *,
    rationale: str,
    hint: str,
    severity: Severity = Severity.ERROR,
    sources: Iterable[Source] = ALL_SOURCES,
    scope: Scope = "all",
    opt_in: bool = False,
) -> Callable[[Check], Check]:
    """Register a check under a stable id; ids are never reused or renumbered."""

    def register(check: Check) -> Check:
        if id in registry:
            raise RuntimeError(f"rule id {id} registered twice")
        registry[id] = define_rule(
            id,
            name,
            rationale=rationale,
            hint=hint,
            severity=severity,
            sources=sources,
            scope=scope,
            opt_in=opt_in,
        )(check)
        return check

    return register
