"""A baseline: the findings a team has accepted for now, so a check can be adopted on an
existing schema and still fail on anything new.

``write_baseline`` records every current finding in a JSON file (sorted, one entry per
finding, meant for version control); ``apply_baseline`` moves the findings the file
records out of ``report.findings`` into ``report.baselined`` (they never fail a check)
and lists in ``report.gone`` the entries that no longer occur, so the file can shrink.

A finding is matched by rule, table and subject (the column, index or constraint), not
by its message: a sequence at 83 % and then at 85 % is the same finding.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from qxdb.conventions.findings import CheckReport, Finding
from qxdb.errors import ConfigurationError

__all__ = ["BASELINE_FORMAT", "apply_baseline", "finding_key", "write_baseline"]

BASELINE_FORMAT = 1
_MARKER = "qxdb-schema-baseline"

Entry = dict[str, str | None]


def finding_key(rule_id: str, table: str, subject: str | None, message: str) -> str:
    """What identifies a finding across runs; the message only when there is no subject."""
    return "\x1f".join((rule_id, table, subject if subject is not None else f"={message}"))


def _entry(f: Finding) -> Entry:
    return {"rule_id": f.rule_id, "table": f.table, "subject": f.subject, "message": f.message}


def _key(entry: Entry) -> str:
    return finding_key(
        str(entry["rule_id"]), str(entry["table"]), entry["subject"], str(entry["message"])
    )


def write_baseline(report: CheckReport, path: str | Path) -> int:
    """Record the report's findings (new and already baselined) in ``path``; returns how many."""
    entries = sorted(
        (_entry(f) for f in [*report.findings, *report.baselined]),
        key=lambda e: (str(e["table"]), str(e["rule_id"]), e["subject"] or "", str(e["message"])),
    )
    document = {_MARKER: BASELINE_FORMAT, "findings": entries}
    try:
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write baseline {path}: {exc.strerror or exc}") from None
    return len(entries)


def _load(path: Path) -> list[Entry]:
    if not path.is_file():
        raise ConfigurationError(
            f"baseline file {path} not found (create it with --write-baseline {path})"
        )
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read baseline {path}: {exc}") from None
    if not isinstance(document, dict) or document.get(_MARKER) != BASELINE_FORMAT:
        raise ConfigurationError(
            f"{path} is not a qxdb schema baseline (expected {{{_MARKER!r}: {BASELINE_FORMAT}, …}})"
        )
    findings = document.get("findings")
    entries: list[Entry] = []
    for n, item in enumerate(findings if isinstance(findings, list) else [None]):
        valid = (
            isinstance(item, dict)
            and all(isinstance(item.get(k), str) for k in ("rule_id", "table", "message"))
            and isinstance(item.get("subject"), str | None)
        )
        if not valid:
            raise ConfigurationError(
                f"baseline {path}: findings[{n}] must have rule_id, table, message (strings) "
                "and subject (string or null)"
            )
        entries.append({k: item.get(k) for k in ("rule_id", "table", "subject", "message")})
    return entries


def apply_baseline(report: CheckReport, path: str | Path) -> None:
    """Split ``report.findings`` by the baseline in ``path`` (see the module docstring)."""
    entries = _load(Path(path))
    remaining = Counter(_key(e) for e in entries)
    new: list[Finding] = []
    for finding in report.findings:
        key = finding_key(finding.rule_id, finding.table, finding.subject, finding.message)
        if remaining[key] > 0:
            remaining[key] -= 1
            report.baselined.append(finding)
        else:
            new.append(finding)
    report.findings = new
    report.baseline_file = str(path)
    # An ignored finding still occurs (silenced elsewhere): its entry is not gone.
    for finding in report.ignored:
        key = finding_key(finding.rule_id, finding.table, finding.subject, finding.message)
        if remaining[key] > 0:
            remaining[key] -= 1
    # Entries of rules that did not run (--rule, --ignore) are not "gone"; those of a
    # dropped table are.
    judged = set(report.rules)
    for entry in entries:
        key = _key(entry)
        if entry["rule_id"] not in judged:
            continue
        if remaining[key] > 0:
            remaining[key] -= 1
            report.gone.append(entry)
