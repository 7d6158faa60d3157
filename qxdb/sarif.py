"""SARIF 2.1.0 logs from any checker's findings (``schema check``, ``migrate lint`` …).

SARIF is the OASIS format that code scanning services (GitHub code scanning, Azure
DevOps, SonarQube, IDE viewers) read. This module knows nothing of qxdb's checks: a
caller describes its rules and results with the small types below and gets one JSON
document (a dict) back. Standard library only, so the command can import it cheaply.

::

    log = sarif_log(
        tool="qxdb schema check",
        version="0.2.0",
        rules=[SarifRule("QX016", "invalid-index", "A failed build …", level="error")],
        results=[SarifResult("QX016", "error", "index ix_a is invalid",
                             (SarifLocation(logical="orders.ix_a", logical_kind="index"),))],
    )
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "SARIF_SCHEMA",
    "SARIF_VERSION",
    "BaselineState",
    "Level",
    "SarifLocation",
    "SarifResult",
    "SarifRule",
    "sarif_level",
    "sarif_log",
]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

Level = Literal["error", "warning", "note", "none"]
BaselineState = Literal["new", "unchanged", "updated", "absent"]

# A checker's severity names -> SARIF levels ("info" has no SARIF twin: it is a note).
_LEVELS: dict[str, Level] = {
    "error": "error",
    "warning": "warning",
    "info": "note",
    "note": "note",
    "none": "none",
}


def sarif_level(severity: str) -> Level:
    """The SARIF level of a severity name (error, warning, info/note, none)."""
    try:
        return _LEVELS[str(severity).lower()]
    except KeyError:
        raise ValueError(f"no SARIF level for severity {severity!r}") from None


@dataclass(frozen=True, slots=True)
class SarifRule:
    id: str
    name: str | None = None
    short_description: str | None = None  # one line: why the rule exists
    full_description: str | None = None  # the longer documentation
    help: str | None = None  # how to fix it
    level: Level = "warning"  # the rule's default level


@dataclass(frozen=True, slots=True)
class SarifLocation:
    """Where a result is: a file (and line) and/or a logical object such as a table."""

    uri: str | None = None  # relative to the repository root, forward slashes
    line: int | None = None
    logical: str | None = None  # fully qualified name, e.g. "orders.ix_orders_code"
    logical_kind: str | None = None  # open-ended: "table", "index", "column" …


@dataclass(frozen=True, slots=True)
class SarifResult:
    rule_id: str
    level: Level
    message: str
    locations: tuple[SarifLocation, ...] = ()
    # Stable identity across runs, by fingerprint kind ("qxdbFinding/v1": "…"), so code
    # scanning services follow one result from run to run.
    fingerprints: Mapping[str, str] | None = None
    # A justification makes the result suppressed (reported, not counted as a problem):
    # "inSource" when the suppression is written beside the code (a lint-ignore comment),
    # "external" when it lives elsewhere (a baseline, a config file).
    suppression: str | None = None
    suppression_kind: Literal["inSource", "external"] = "external"
    baseline_state: BaselineState | None = None
    properties: Mapping[str, Any] | None = None


def _text(value: str | None) -> dict[str, str] | None:
    return {"text": value} if value else None


def _location(loc: SarifLocation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if loc.uri is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": loc.uri}}
        if loc.line is not None:
            physical["region"] = {"startLine": max(1, loc.line)}
        out["physicalLocation"] = physical
    if loc.logical is not None:
        logical: dict[str, Any] = {"fullyQualifiedName": loc.logical}
        logical["name"] = loc.logical.rsplit(".", 1)[-1]
        if loc.logical_kind:
            logical["kind"] = loc.logical_kind
        out["logicalLocations"] = [logical]
    return out


def _rule(rule: SarifRule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id}
    if rule.name:
        out["name"] = rule.name
    for key, value in (
        ("shortDescription", _text(rule.short_description)),
        ("fullDescription", _text(rule.full_description)),
        ("help", _text(rule.help)),
    ):
        if value:
            out[key] = value
    out["defaultConfiguration"] = {"level": rule.level}
    return out


def sarif_log(
    *,
    tool: str,
    version: str | None = None,
    information_uri: str | None = None,
    rules: Sequence[SarifRule],
    results: Sequence[SarifResult],
    properties: Mapping[str, Any] | None = None,
    column_kind: Literal["unicodeCodePoints", "utf16CodeUnits"] | None = None,
) -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run. Every result's rule must be among ``rules``."""
    index = {rule.id: i for i, rule in enumerate(rules)}
    driver: dict[str, Any] = {"name": tool}
    if version:
        driver["version"] = version
    if information_uri:
        driver["informationUri"] = information_uri
    driver["rules"] = [_rule(r) for r in rules]
    out_results = []
    for result in results:
        if result.rule_id not in index:
            raise ValueError(f"result for rule {result.rule_id!r}, which is not among the rules")
        item: dict[str, Any] = {
            "ruleId": result.rule_id,
            "ruleIndex": index[result.rule_id],
            "level": result.level,
            "message": {"text": result.message},
        }
        locations = [loc for loc in map(_location, result.locations) if loc]
        if locations:
            item["locations"] = locations
        if result.fingerprints:
            item["partialFingerprints"] = dict(result.fingerprints)
        if result.suppression is not None:
            item["suppressions"] = [
                {"kind": result.suppression_kind, "justification": result.suppression}
            ]
        if result.baseline_state is not None:
            item["baselineState"] = result.baseline_state
        if result.properties:
            item["properties"] = dict(result.properties)
        out_results.append(item)
    run: dict[str, Any] = {"tool": {"driver": driver}, "results": out_results}
    if column_kind is not None:
        run["columnKind"] = column_kind
    if properties:
        run["properties"] = dict(properties)
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
