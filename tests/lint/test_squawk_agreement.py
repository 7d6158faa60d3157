"""Ours against squawk, case by case, on Alembic's offline SQL of the same corpus.

squawk (``pip install squawk-cli``, an optional dev dependency) lints raw SQL. Each corpus
revision is rendered to the SQL Alembic would run (``BEGIN``/``COMMIT`` around the
revision, ``COMMIT``/``BEGIN`` around autocommit blocks) and both tools judge it for the
case's own rule. The table of agreement is printed (``pytest -s``); the disagreements are
pinned below with the reason for each, so a change in either tool fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from qxdb.migrations.lint import lint_revisions
from tests.lint.corpus import CONFIG, CORPUS_CONFIG, cases, expected

SQUAWK = shutil.which("squawk")

# Our rule -> the squawk rules that judge the same hazard (empty: squawk has none).
COUNTERPARTS: dict[str, set[str]] = {
    "QXM001": {"require-concurrent-index-creation"},
    "QXM002": {"require-concurrent-index-deletion"},
    "QXM003": {"ban-concurrent-index-creation-in-transaction"},
    "QXM004": {"adding-foreign-key-constraint"},
    "QXM005": {"constraint-missing-not-valid"},
    "QXM006": {"adding-not-nullable-field"},
    "QXM007": {"adding-required-field"},
    "QXM008": {"adding-field-with-default"},
    "QXM009": {"changing-column-type"},
    "QXM010": {"renaming-column"},
    "QXM011": {"renaming-table"},
    "QXM012": {"ban-drop-column"},
    "QXM013": {"ban-drop-table"},
    "QXM014": {"disallowed-unique-constraint"},
    "QXM015": {"adding-serial-primary-key-field"},
    "QXM016": {"prefer-bigint-over-int", "prefer-identity"},
    "QXM017": {"prefer-timestamp-tz"},
    "QXM018": {"ban-char-field"},
    "QXM019": {"prefer-text-field"},
    "QXM020": set(),  # squawk has no rule for ADD VALUE inside a transaction
    "QXM021": set(),  # squawk does not judge data changes
    "QXM022": {"require-lock-timeout"},
    "QXM023": set(),
    "QXM024": set(),  # suppression comments live in the Python file, not in the SQL
    "QXM025": set(),
}

# Cases where squawk, given only the SQL, judges differently, and why.
KNOWN_DISAGREEMENTS: dict[str, str] = {
    "qxm009_safe": "varchar(n) -> text is metadata-only in PostgreSQL; squawk flags every "
    "type change",
    "qxm012_safe": "suppressed with a reason in the revision file, which squawk cannot see",
    "qxm013_safe": "suppressed with a reason in the revision file, which squawk cannot see",
}


def _squawk_rules(sql_dir: Path) -> dict[str, set[str]]:
    assert SQUAWK is not None
    files = sorted(str(p) for p in sql_dir.glob("*.sql"))
    proc = subprocess.run(
        [SQUAWK, "--reporter", "json", "--pg-version", "15", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in {0, 1}, proc.stderr
    found: dict[str, set[str]] = {Path(f).stem: set() for f in files}
    for item in json.loads(proc.stdout or "[]"):
        found[Path(item["file"]).stem].add(item["rule_name"])
    return found


@pytest.mark.skipif(SQUAWK is None, reason="squawk is not installed (pip install squawk-cli)")
def test_agreement_with_squawk_rule_by_rule(tmp_path: Path) -> None:
    report = lint_revisions(
        config=CONFIG, all_revisions=True, lint_config=CORPUS_CONFIG, emit_sql=True
    )
    for revision in report.revisions:
        assert revision.sql is not None
        (tmp_path / f"{revision.revision}.sql").write_text(revision.sql)
    theirs = _squawk_rules(tmp_path)
    rows: list[tuple[str, str, str, str, str]] = []
    disagreements: set[str] = set()
    for path in cases():
        case = path.stem
        rule = case[:6].upper()
        counterparts = COUNTERPARTS[rule]
        ours = rule in {f.rule_id for f in report.for_revision(case)}
        assert ours == (rule in expected(path))
        if not counterparts:
            verdict, squawk_says = "no squawk rule", "-"
        else:
            hit = sorted(counterparts & theirs[case])
            squawk_says = ", ".join(hit) or "quiet"
            agree = bool(hit) == ours
            verdict = "agree" if agree else "DIFFER"
            if not agree:
                disagreements.add(case)
        rows.append((case, rule, "fires" if ours else "quiet", squawk_says, verdict))
    width = max(len(r[3]) for r in rows)
    print(f"\n{'case':<24} {'rule':<7} {'qxdb':<6} {'squawk':<{width}} verdict")
    for case, rule, ours_text, squawk_says, verdict in rows:
        print(f"{case:<24} {rule:<7} {ours_text:<6} {squawk_says:<{width}} {verdict}")
    assert disagreements == set(KNOWN_DISAGREEMENTS), sorted(disagreements)
