"""Write generated files, or (``--check``) report which ones no longer match the code."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def stale_files(expected: Mapping[Path, str]) -> list[Path]:
    """The files whose content differs from what the generator makes now (or are missing)."""
    return [
        path
        for path, text in expected.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def sync(expected: Mapping[Path, str], *, check: bool, generator: str) -> int:
    """Write every file (0), or with ``check`` exit 1 naming each stale file."""
    stale = stale_files(expected)
    if check:
        for path in stale:
            sys.stderr.write(
                f"{_shown(path)} is stale: it no longer matches the qxdb command; "
                f"run `python {generator}` and commit the result\n"
            )
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {_shown(path)}")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)
