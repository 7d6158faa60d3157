"""A :class:`CheckReport` as a SARIF 2.1.0 log (``qxdb schema check --format sarif``)."""

from __future__ import annotations

import hashlib
from typing import Any

from qxdb.conventions.baseline import finding_key
from qxdb.conventions.findings import CheckReport, Finding
from qxdb.conventions.plugins import all_rules
from qxdb.sarif import BaselineState, SarifLocation, SarifResult, SarifRule, sarif_level, sarif_log

__all__ = ["report_to_sarif"]


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qxdb")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return None


def _fingerprint(rule_id: str, table: str, subject: str | None, message: str) -> str:
    key = finding_key(rule_id, table, subject, message)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _locations(report: CheckReport, table: str, subject: str | None) -> tuple[SarifLocation, ...]:
    logical = f"{table}.{subject}" if subject and subject != table else table
    kind = "table" if logical == table else "object"
    # A model check points at the module that defines the metadata; a live database
    # has no file, only the object's name.
    return (SarifLocation(uri=report.source_file, logical=logical, logical_kind=kind),)


def _result(
    report: CheckReport,
    f: Finding,
    *,
    state: BaselineState | None,
    suppression: str | None = None,
) -> SarifResult:
    return SarifResult(
        rule_id=f.rule_id,
        level=sarif_level(f.severity),
        message=f"{f.table}: {f.message}. Fix: {f.hint}",
        locations=_locations(report, f.table, f.subject),
        fingerprints={"qxdbFinding/v1": _fingerprint(f.rule_id, f.table, f.subject, f.message)},
        suppression=suppression,
        baseline_state=state,
        properties={"table": f.table, "severity": str(f.severity)},
    )


def report_to_sarif(report: CheckReport) -> dict[str, Any]:
    """One SARIF log: every rule that ran, every finding (ignored ones as suppressed; with
    a baseline, each result's baselineState, and the entries gone as "absent")."""
    known = all_rules()
    rules = [
        SarifRule(
            id=rule.id,
            name=rule.name,
            short_description=rule.rationale,
            full_description=rule.doc or None,
            help=rule.hint,
            level=sarif_level(rule.severity),
        )
        for rule in (known[r] for r in report.rules if r in known)
    ]
    with_baseline = report.baseline_file is not None
    results = [_result(report, f, state="new" if with_baseline else None) for f in report.findings]
    results += [_result(report, f, state="unchanged") for f in report.baselined]
    results += [
        _result(report, f, state="new" if with_baseline else None, suppression=f.ignored_reason)
        for f in report.ignored
    ]
    ran = {r.id for r in rules}
    for entry in report.gone:
        rule_id, table = str(entry["rule_id"]), str(entry["table"])
        if rule_id not in ran:
            continue
        results.append(
            SarifResult(
                rule_id=rule_id,
                level="none",
                message=f"{table}: no longer found: {entry['message']}",
                locations=_locations(report, table, entry["subject"]),
                fingerprints={
                    "qxdbFinding/v1": _fingerprint(
                        rule_id, table, entry["subject"], str(entry["message"])
                    )
                },
                baseline_state="absent",
            )
        )
    return sarif_log(
        tool="qxdb schema check",
        version=_version(),
        rules=rules,
        results=results,
        properties={"source": report.source, "target": report.target},
    )
