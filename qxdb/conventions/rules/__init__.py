"""The rules, by stable id. Importing this package registers every rule."""

from __future__ import annotations

from qxdb.conventions.rules import columns, health, indexes, keys, names, outbox, tenancy
from qxdb.conventions.rules.base import CheckContext, Rule, Source, Violation, registry

__all__ = ["RULES", "CheckContext", "Rule", "Source", "Violation"]

_ = (columns, health, indexes, keys, names, outbox, tenancy)  # imported for their registrations

RULES: dict[str, Rule] = dict(sorted(registry.items()))
