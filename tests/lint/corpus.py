"""The lint corpus under tests/lint_corpus, and what each of its revisions expects."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from qxdb.migrations.lint import LintConfig, LintReport, lint_revisions, parse_lint_config

CORPUS = Path(__file__).resolve().parents[1] / "lint_corpus"
CONFIG = CORPUS / "alembic.ini"
VERSIONS = CORPUS / "versions"
# QXM019 is off by default; the corpus turns it on so that its firing case can fire.
CORPUS_CONFIG: LintConfig = parse_lint_config({"rules": {"QXM019": "warning"}})


def expected(path: Path) -> set[str]:
    """The ``# expect: QXM001, QXM022`` line of a corpus revision (``nothing``: no finding)."""
    match = re.search(r"^# expect: (.*)$", path.read_text(), re.M)
    assert match, f"{path.name} has no '# expect:' line"
    text = match.group(1).strip()
    return set() if text == "nothing" else {p.strip() for p in text.split(",")}


def cases() -> list[Path]:
    return sorted(VERSIONS.glob("qxm*.py"))


@cache
def corpus_report() -> LintReport:
    return lint_revisions(config=CONFIG, all_revisions=True, lint_config=CORPUS_CONFIG)
