"""``qxdb migrate lint``: catch the revision that would lock production before it merges.

Each revision's ``upgrade()`` runs offline against a recording Alembic ``Operations``
(no database), its operations become :class:`~.actions.Action` values, and the rules of
:mod:`.rules` judge them::

    from qxdb.migrations.lint import lint_revisions

    report = lint_revisions(all_revisions=True)
    for finding in report.findings:
        print(finding.path, finding.line, finding.rule_id, finding.message)
"""

from qxdb.migrations.lint.config import LintConfig, load_lint_config, parse_lint_config
from qxdb.migrations.lint.linter import lint_files, lint_pending, lint_revisions
from qxdb.migrations.lint.report import LintFinding, LintReport, RevisionLint
from qxdb.migrations.lint.rules import RULES, LintRule, rule_by_ref

__all__ = [
    "RULES",
    "LintConfig",
    "LintFinding",
    "LintReport",
    "LintRule",
    "RevisionLint",
    "lint_files",
    "lint_pending",
    "lint_revisions",
    "load_lint_config",
    "parse_lint_config",
    "rule_by_ref",
]
