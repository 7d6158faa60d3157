"""Click's exception classes, wherever this Typer keeps them (recent Typers vendor Click)."""

from __future__ import annotations

from types import ModuleType


def _load() -> ModuleType:
    try:
        from typer._click import exceptions
    except ImportError:  # Typer releases that depend on Click itself
        from click import exceptions  # type: ignore[no-redef,unused-ignore]
    return exceptions


click_exceptions = _load()
