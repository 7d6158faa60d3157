"""Schema conventions: the rules qxdb's mapping helpers follow, checked on models and
on live databases (``qxdb schema check``).

::

    from qxdb.conventions import check_metadata, load_config

    report = check_metadata(metadata, load_config())
    assert report.ok, report.findings

Rules of your own: make them with :func:`define_rule` and expose them through the
``qxdb.schema_rules`` entry point group (see docs/schema.md).
"""

from __future__ import annotations

from qxdb.conventions.baseline import apply_baseline, write_baseline
from qxdb.conventions.catalog import Catalog
from qxdb.conventions.checker import (
    check_connection,
    check_database,
    check_import_path,
    check_metadata,
    load_metadata,
)
from qxdb.conventions.config import SchemaConfig, load_config, parse_config, resolve_rule
from qxdb.conventions.findings import CheckReport, Finding, Severity
from qxdb.conventions.plugins import ENTRY_POINT_GROUP, all_rules
from qxdb.conventions.rules import RULES, CheckContext, Rule, Violation
from qxdb.conventions.rules.base import define_rule
from qxdb.conventions.sarif_report import report_to_sarif
from qxdb.conventions.snapshot import TableSnapshot

__all__ = [
    "ENTRY_POINT_GROUP",
    "RULES",
    "Catalog",
    "CheckContext",
    "CheckReport",
    "Finding",
    "Rule",
    "SchemaConfig",
    "Severity",
    "TableSnapshot",
    "Violation",
    "all_rules",
    "apply_baseline",
    "check_connection",
    "check_database",
    "check_import_path",
    "check_metadata",
    "define_rule",
    "load_config",
    "load_metadata",
    "parse_config",
    "report_to_sarif",
    "resolve_rule",
    "write_baseline",
]
