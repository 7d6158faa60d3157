"""Files that ship beside the code: Alembic templates and shell completions.

In a wheel they live inside the package (``qxdb/_data/…``); in a source checkout or an
editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource_dir"]

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``alembic_templates`` or ``completions``, wherever this install keeps it."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"qxdb resource folder {name!r} is missing from this installation")
