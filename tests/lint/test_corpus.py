"""Every rule fires on its corpus revision and stays quiet on the close neighbour."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from qxdb.migrations.lint import RULES, lint_files, lint_revisions
from tests.lint.corpus import CONFIG, CORPUS_CONFIG, VERSIONS, cases, corpus_report, expected


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.stem)
def test_corpus_revision_gets_exactly_its_expected_findings(path: Path) -> None:
    report = corpus_report()
    found = {f.rule_id for f in report.for_revision(path.stem)}
    assert found == expected(path), [f.message for f in report.for_revision(path.stem)]


def test_every_rule_has_a_firing_case_and_a_safe_neighbour() -> None:
    names = {p.stem for p in cases()}
    for rule_id in RULES:
        stem = rule_id.lower()
        assert f"{stem}_fires" in names, f"{rule_id} has no firing case in the corpus"
        assert f"{stem}_safe" in names, f"{rule_id} has no safe neighbour in the corpus"
        assert rule_id in expected(VERSIONS / f"{stem}_fires.py")
    postgres_rules = [r for r in RULES if r not in {"QXM024", "QXM025"}]
    assert len(postgres_rules) >= 20


def test_findings_point_at_the_operation_line() -> None:
    for finding in corpus_report().findings:
        lines = Path(finding.path).read_text().splitlines()
        if finding.rule_id == "QXM024":
            assert "lint-ignore" in lines[finding.line - 1]
        else:
            assert re.search(r"\bop\.|bind", lines[finding.line - 1]), (finding, lines)
        assert finding.locks and finding.recipe


def test_suppressions_are_reported_as_ignored_with_their_reason() -> None:
    ignored = {(f.revision, f.rule_id): f.ignored_reason for f in corpus_report().ignored}
    assert ignored == {
        ("qxm012_safe", "QXM012"): "the app stopped reading legacy_code in release 2.4",
        ("qxm013_safe", "QXM013"): "importer retired in 3.0, table backed up",
        ("qxm024_safe", "QXM012"): "fax removed from the app in 1.9",
    }


def test_varchar_rule_is_off_by_default() -> None:
    report = lint_revisions(config=CONFIG, revision_range="qxm019_fires")
    assert report.findings == []
    assert "QXM019" not in report.rules


def test_not_null_recipe_needs_the_validated_check_from_the_earlier_revision() -> None:
    # Linted on its own file, step 2 cannot know that step 1 added the check.
    alone = lint_files([VERSIONS / "qxm006_safe.py"], lint_config=CORPUS_CONFIG)
    assert {f.rule_id for f in alone.findings} == {"QXM006"}
    # Linted as the project's pending revision, step 1 (applied) still counts.
    pending = lint_revisions(config=CONFIG, applied=["qxm006_safe_step1"])
    assert "qxm006_safe" in {r.revision for r in pending.revisions}
    assert pending.for_revision("qxm006_safe") == []


def test_selection_of_revisions() -> None:
    def linted(**kw: object) -> list[str]:
        report = lint_revisions(config=CONFIG, lint_config=CORPUS_CONFIG, **kw)  # type: ignore[arg-type]
        return sorted(r.revision for r in report.revisions)

    assert linted(since="qxm006_safe_step1") == ["qxm006_safe"]
    assert linted(revision_range="base:qxm006_safe") == ["qxm006_safe", "qxm006_safe_step1"]
    assert linted(revision_range="qxm006_safe_step1:qxm006_safe") == ["qxm006_safe"]
    assert linted(revision_range="qxm001_fires") == ["qxm001_fires"]
    assert len(linted(all_revisions=True)) == len(cases())
    assert len(linted(applied=[])) == len(cases())


@pytest.mark.parametrize(
    "kw",
    [
        {"revision_range": "no_such_revision"},
        {"since": "no_such_revision"},
        {"all_revisions": True, "since": "qxm001_fires"},
        {},
        {"revision_range": " "},
    ],
)
def test_bad_selections_are_validation_errors(kw: dict[str, object]) -> None:
    from qxdb.errors import ValidationError

    with pytest.raises(ValidationError):
        lint_revisions(config=CONFIG, **kw)  # type: ignore[arg-type]


def test_every_rule_is_documented_with_its_recipe() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_lint_rules_doc.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
