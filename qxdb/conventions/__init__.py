"""Schema conventions: the rules qxdb's mapping helpers follow, checked on models and
on live databases (``qxdb schema check``).

::

    from qxdb.conventions import check_metadata, load_config

    report = check_metadata(metadata, load_config())
    assert report.ok, report.findings
"""

from __future__ import annotations

from qxdb.conventions.checker import (
    check_connection,
    check_database,
    check_import_path,
    check_metadata,
    load_metadata,
)
from qxdb.conventions.config import SchemaConfig, load_config, parse_config, resolve_rule
from qxdb.conventions.findings import CheckReport, Finding, Severity
from qxdb.conventions.rules import RULES, Rule

__all__ = [
    "RULES",
    "CheckReport",
    "Finding",
    "Rule",
    "SchemaConfig",
    "Severity",
    "check_connection",
    "check_database",
    "check_import_path",
    "check_metadata",
    "load_config",
    "load_metadata",
    "parse_config",
    "resolve_rule",
]
