"""``[tool.qxdb.schema]`` in pyproject.toml, and the command's flags on top of it.

::

    [tool.qxdb.schema]
    metadata = "myservice.db:metadata"   # what `qxdb schema check` checks by default
    skip-tables = ["legacy_*"]           # fnmatch patterns; alembic_version always skipped
    outbox-tables = ["billing_outbox"]   # live tables checked against the outbox shape

    [tool.qxdb.schema.rules]             # "off", "info", "warning" or "error"; by id or name
    QX014 = "off"
    fk-on-delete = "warning"

    [tool.qxdb.schema.ignore.legacy_orders]   # per table: rule = reason (required)
    QX001 = "integer key kept until the 2027 migration"
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qxdb.conventions.findings import Severity
from qxdb.conventions.plugins import all_rules
from qxdb.conventions.rules import Rule
from qxdb.errors import ConfigurationError

__all__ = ["DEFAULT_SKIP_TABLES", "SchemaConfig", "load_config", "resolve_rule"]

DEFAULT_SKIP_TABLES: tuple[str, ...] = ("alembic_version",)
_KEYS = {"metadata", "skip-tables", "outbox-tables", "rules", "ignore"}


def resolve_rule(ref: str, *, where: str | None = None) -> Rule:
    """A rule by id (``QX004``, any case) or by name (``tenant-indexed``), built-in or
    from a plugin."""
    rules = all_rules()
    found = rules.get(ref.strip().upper()) or next(
        (r for r in rules.values() if r.name == ref.strip().lower()), None
    )
    if found is None:
        context = f" in {where}" if where else ""
        raise ConfigurationError(f"unknown rule {ref!r}{context} (known: {', '.join(rules)})")
    return found


@dataclass(frozen=True, slots=True)
class SchemaConfig:
    """Which rules run, at which severity, on which tables, and what is ignored."""

    # rule id -> severity, or None for off
    severities: Mapping[str, Severity | None] = field(default_factory=dict)
    # when set (the command's --rule), only these rule ids run
    only: frozenset[str] | None = None
    skip_tables: tuple[str, ...] = DEFAULT_SKIP_TABLES
    # table -> rule id -> reason
    ignores: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    metadata: str | None = None
    outbox_tables: tuple[str, ...] = ()
    path: str | None = None

    def severity(self, rule: Rule) -> Severity | None:
        """The effective severity, or None when the rule does not run."""
        if self.only is not None and rule.id not in self.only:
            return None
        return self.severities.get(rule.id, None if rule.opt_in else rule.severity)

    def active_rules(self) -> list[Rule]:
        return [r for r in all_rules().values() if self.severity(r) is not None]

    def skips(self, table: str) -> bool:
        return any(fnmatch.fnmatchcase(table, pattern) for pattern in self.skip_tables)

    def with_flags(self, *, only: Iterable[str] = (), ignore: Iterable[str] = ()) -> SchemaConfig:
        """The command's ``--rule`` (run only these) and ``--ignore`` (turn these off),
        which win over the configuration."""
        selected = frozenset(resolve_rule(r, where="--rule").id for r in only)
        severities = dict(self.severities)
        for rule_id in selected:
            # Naming a rule on the command line runs it, even if the config turned it off.
            named = all_rules()[rule_id]
            if severities.get(rule_id, None if named.opt_in else named.severity) is None:
                severities[rule_id] = named.severity
        for ref in ignore:
            severities[resolve_rule(ref, where="--ignore").id] = None
        return replace(self, only=selected or self.only, severities=severities)


def load_config(path: str | Path | None = None) -> SchemaConfig:
    """Read ``[tool.qxdb.schema]``. No path: ./pyproject.toml if it exists, else defaults."""
    explicit = path is not None
    file = Path(path) if path is not None else Path("pyproject.toml")
    if not file.is_file():
        if explicit:
            raise ConfigurationError(f"config file {file} not found")
        return SchemaConfig()
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {file}: {exc}") from None
    section = document.get("tool", {}).get("qxdb", {}).get("schema", {})
    return parse_config(section, origin=str(file))


def parse_config(section: Mapping[str, Any], *, origin: str = "config") -> SchemaConfig:
    where = f"{origin} [tool.qxdb.schema]"
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    normalized = {str(k).replace("_", "-"): v for k, v in section.items()}
    unknown = sorted(set(normalized) - _KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    severities: dict[str, Severity | None] = {}
    for ref, value in _table(normalized.get("rules", {}), f"{where}.rules").items():
        severities[resolve_rule(ref, where=f"{where}.rules").id] = _severity(
            value, f"{where}.rules.{ref}"
        )
    ignores: dict[str, dict[str, str]] = {}
    for table, rules in _table(normalized.get("ignore", {}), f"{where}.ignore").items():
        for ref, reason in _table(rules, f"{where}.ignore.{table}").items():
            rule = resolve_rule(ref, where=f"{where}.ignore.{table}")
            if not isinstance(reason, str) or not reason.strip():
                raise ConfigurationError(
                    f"{where}.ignore.{table}.{ref}: give the reason for ignoring it as a string"
                )
            ignores.setdefault(table, {})[rule.id] = reason.strip()
    metadata = normalized.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise ConfigurationError(f"{where}.metadata must be a string like 'pkg.mod:metadata'")
    return SchemaConfig(
        severities=severities,
        skip_tables=(
            *DEFAULT_SKIP_TABLES,
            *_strings(normalized.get("skip-tables", []), f"{where}.skip-tables"),
        ),
        ignores=ignores,
        metadata=metadata,
        outbox_tables=_strings(normalized.get("outbox-tables", []), f"{where}.outbox-tables"),
        path=origin,
    )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where} must be a list of strings")
    return tuple(value)


def _severity(value: Any, where: str) -> Severity | None:
    text = str(value).strip().lower() if isinstance(value, str | bool) else None
    if value is False or text == "off":
        return None
    if text in {s.value for s in Severity}:
        return Severity(text)
    raise ConfigurationError(f'{where} must be "off", "info", "warning" or "error", got {value!r}')
