"""Write the rule table of `qxdb migrate lint` into docs/migrate.md, from the rules themselves.

python scripts/gen_lint_rules_doc.py           # rewrite the table
python scripts/gen_lint_rules_doc.py --check   # exit 1 if the table is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qxdb.migrations.lint import RULES

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrate.md"
START, END = "<!-- lint-rules:start -->", "<!-- lint-rules:end -->"


def table() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| id | name | default | catches | locks or rewrites | why it matters | safe recipe "
        "| new table exempt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in RULES.values():
        rows.append(
            f"| {r.id} | `{r.name}` | {r.severity or 'off'} | {cell(r.summary)} | "
            f"{cell(r.locks)} | {cell(r.why)} | {cell(r.recipe)} | "
            f"{'no' if r.new_tables_too else 'yes'} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    head, found, rest = text.partition(START)
    _, ended, tail = rest.partition(END)
    if not found or not ended:
        raise SystemExit(f"{DOC}: markers {START} / {END} not found")
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args()
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{DOC} is stale: run python scripts/gen_lint_rules_doc.py", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        DOC.write_text(wanted, encoding="utf-8")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
