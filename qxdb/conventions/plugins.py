"""Rules from other packages, through the ``qxdb.schema_rules`` entry point group.

A package declares, in its pyproject.toml::

    [project.entry-points."qxdb.schema_rules"]
    acme = "acme_db_rules:RULES"      # a Rule, or a list/tuple of Rules

and its rules then run, list, explain, ignore and configure exactly like the built-in
ones. A plugin that cannot be loaded, or whose rule id or name clashes with another
rule, is a configuration error (exit 2): a check must never silently lose a rule.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points

from qxdb.conventions.rules import RULES, Rule
from qxdb.errors import ConfigurationError

__all__ = ["ENTRY_POINT_GROUP", "all_rules", "plugin_rules"]

ENTRY_POINT_GROUP = "qxdb.schema_rules"


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def _rules_of(ep: EntryPoint) -> list[Rule]:
    where = f"schema rule plugin {ep.name!r} ({ep.value})"
    try:
        loaded = ep.load()
    except Exception as exc:
        raise ConfigurationError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    items: list[object] = (
        [loaded]
        if isinstance(loaded, Rule)
        else list(loaded)
        if isinstance(loaded, list | tuple)
        else []
    )
    rules = [r for r in items if isinstance(r, Rule)]
    if not rules or len(rules) != len(items):
        raise ConfigurationError(
            f"{where} must name a Rule or a list of Rules (made with qxdb.conventions.define_rule)"
        )
    origin = _origin(ep)
    return [replace(r, origin=origin) for r in rules]


@functools.cache
def plugin_rules() -> dict[str, Rule]:
    """The installed plugins' rules by id, loaded once per process."""
    found: dict[str, Rule] = {}
    names = {r.name: r for r in RULES.values()}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        for rule in _rules_of(ep):
            clash = RULES.get(rule.id) or found.get(rule.id) or names.get(rule.name)
            if clash is not None:
                raise ConfigurationError(
                    f"schema rule plugin {ep.name!r}: rule {rule.id} {rule.name} clashes with "
                    f"{clash.id} {clash.name} ({clash.origin})"
                )
            found[rule.id] = rule
            names[rule.name] = rule
    return dict(sorted(found.items()))


def all_rules() -> dict[str, Rule]:
    """Built-in rules, then the plugins' rules, each group in id order."""
    return {**RULES, **plugin_rules()}
