"""``[tool.qxdb.lint]`` in pyproject.toml, and the command's flags on top of it.

::

    [tool.qxdb.lint]
    fail-on = "error"               # exit 1 on errors only (default "warning": any finding)

    [tool.qxdb.lint.rules]          # "off", "warning" or "error"; by id or by name
    QXM022 = "off"                  # we deploy with QX_DB__LOCK_TIMEOUT_MS set
    varchar-length = "warning"      # QXM019 is off by default
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qxdb.conventions.findings import Severity
from qxdb.errors import ConfigurationError
from qxdb.migrations.lint.rules import RULES, LintRule, rule_by_ref

__all__ = ["LintConfig", "load_lint_config", "parse_lint_config"]

_KEYS = {"rules", "fail-on"}


def _rule(ref: str, where: str) -> LintRule:
    found = rule_by_ref(ref)
    if found is None:
        raise ConfigurationError(f"unknown lint rule {ref!r} in {where} (known: QXM001-QXM025)")
    return found


@dataclass(frozen=True, slots=True)
class LintConfig:
    """Which rules run, and at which severity."""

    severities: Mapping[str, Severity | None] = field(default_factory=dict)
    only: frozenset[str] | None = None  # the command's --rule
    path: str | None = None
    # The least severity that fails the run (exit 1): any finding by default.
    fail_on: Severity = Severity.WARNING

    def severity(self, rule: LintRule) -> Severity | None:
        if self.only is not None:
            # Naming a rule runs it, at its configured or default severity (warning if off).
            if rule.id not in self.only:
                return None
            return self.severities.get(rule.id) or rule.severity or Severity.WARNING
        return self.severities.get(rule.id, rule.severity)

    def active_rules(self) -> list[str]:
        return [r.id for r in RULES.values() if self.severity(r) is not None]

    def with_flags(
        self,
        *,
        only: Iterable[str] = (),
        ignore: Iterable[str] = (),
        fail_on: Severity | None = None,
    ) -> LintConfig:
        """``--rule`` (run only these), ``--ignore`` (turn these off) and ``--fail-on`` win
        over the file."""
        selected = frozenset(_rule(r, "--rule").id for r in only)
        severities = dict(self.severities)
        for ref in ignore:
            severities[_rule(ref, "--ignore").id] = None
        return replace(
            self,
            only=selected or self.only,
            severities=severities,
            fail_on=fail_on or self.fail_on,
        )


def load_lint_config(path: str | Path | None = None) -> LintConfig:
    """Read ``[tool.qxdb.lint]``. No path: ./pyproject.toml if it exists, else defaults."""
    file = Path(path) if path is not None else Path("pyproject.toml")
    if not file.is_file():
        if path is not None:
            raise ConfigurationError(f"config file {file} not found")
        return LintConfig()
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {file}: {exc}") from None
    section = document.get("tool", {}).get("qxdb", {}).get("lint", {})
    return parse_lint_config(section, origin=str(file))


def parse_lint_config(section: Any, *, origin: str = "config") -> LintConfig:
    where = f"{origin} [tool.qxdb.lint]"
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {unknown[0]!r} (known: fail-on, rules)")
    fail_on = _severity(section.get("fail-on", "warning"), f"{where}.fail-on")
    if fail_on is None:
        raise ConfigurationError(f'{where}.fail-on must be "warning" or "error"')
    rules = section.get("rules", {})
    if not isinstance(rules, Mapping):
        raise ConfigurationError(f"{where}.rules must be a table")
    severities: dict[str, Severity | None] = {}
    for ref, value in rules.items():
        rule = _rule(str(ref), f"{where}.rules")
        severities[rule.id] = _severity(value, f"{where}.rules.{ref}")
    return LintConfig(severities=severities, path=origin, fail_on=fail_on)


def _severity(value: Any, where: str) -> Severity | None:
    text = value.strip().lower() if isinstance(value, str) else None
    if value is False or text == "off":
        return None
    if text in {s.value for s in Severity}:
        return Severity(text)
    raise ConfigurationError(f'{where} must be "off", "warning" or "error", got {value!r}')
