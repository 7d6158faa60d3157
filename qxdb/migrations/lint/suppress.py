"""Suppressions written in the revision file, each with its reason.

::

    op.drop_column("orders", "legacy_code")  # qxdb: lint-ignore[QXM012] unused since 2.4

    # qxdb: lint-ignore[QXM001,QXM022] the table holds 12 rows
    op.create_index("ix_countries_code", "countries", ["code"])

    # qxdb: lint-ignore-file[QXM013] tables of the retired importer, unused since 3.0

A trailing comment covers its own line; a comment on a line of its own covers the next
line of code (the line a finding is reported at: the first line of the ``op.…`` call); a
``lint-ignore-file`` comment covers the whole revision. A suppression without a reason,
or naming an unknown rule, is itself a finding (QXM024) and silences nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qxdb.migrations.lint.rules import rule_by_ref

__all__ = ["Suppressions", "read_suppressions"]

_PATTERN = re.compile(r"#\s*qxdb:\s*lint-ignore(-file)?\s*\[([^\]]*)\]?(.*)$")
_LOOSE = re.compile(r"#\s*qxdb:\s*lint-ignore")


@dataclass(slots=True)
class Suppressions:
    # line -> rule id -> reason
    by_line: dict[int, dict[str, str]] = field(default_factory=dict)
    whole_file: dict[str, str] = field(default_factory=dict)
    # (line, the comment, what is wrong with it) for QXM024
    problems: list[tuple[int, str, str]] = field(default_factory=list)

    def reason(self, rule_id: str, line: int) -> str | None:
        return self.by_line.get(line, {}).get(rule_id) or self.whole_file.get(rule_id)


def read_suppressions(source: str) -> Suppressions:
    found = Suppressions()
    lines = source.splitlines()
    for number, text in enumerate(lines, start=1):
        if "qxdb:" not in text or not _LOOSE.search(text):
            continue
        loose = _LOOSE.search(text)
        comment = text[loose.start() if loose else 0 :].strip()
        match = _PATTERN.search(text)
        if match is None or "]" not in comment:
            found.problems.append((number, comment, "malformed: write lint-ignore[QXM0NN] reason"))
            continue
        whole_file, refs, reason = bool(match.group(1)), match.group(2), match.group(3).strip()
        ids: list[str] = []
        for ref in filter(None, (r.strip() for r in refs.split(","))):
            rule = rule_by_ref(ref)
            if rule is None:
                found.problems.append((number, comment, f"unknown rule {ref!r}"))
            else:
                ids.append(rule.id)
        if not ids:
            if refs.strip() == "":
                found.problems.append((number, comment, "names no rule"))
            continue
        if not reason:
            found.problems.append((number, comment, "no reason given: say why it is safe here"))
            continue
        if whole_file:
            for rule_id in ids:
                found.whole_file[rule_id] = reason
            continue
        code_before = text[: match.start()].strip()
        target = number if code_before else _next_code_line(lines, number)
        for rule_id in ids:
            found.by_line.setdefault(target, {})[rule_id] = reason
    return found


def _next_code_line(lines: list[str], number: int) -> int:
    for index in range(number, len(lines)):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#"):
            return index + 1
    return number
