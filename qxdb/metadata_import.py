"""Importing a service's models by ``package.module:attribute`` (``--metadata``).

One rule for every command that takes such a path (``schema check``, ``migrate init``,
the migration environment), so they accept the same paths and fail the same way: one
line naming the path, never a traceback, whatever the module does while it is imported
(an ``ImportError``, any other exception, or ``sys.exit()`` from a script-style module,
which would otherwise end the command with status 0 and no output).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from qxdb.errors import ConfigurationError, ValidationError

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = ["import_models", "parse_metadata_path"]


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def parse_metadata_path(path: str) -> tuple[str, str]:
    """Split ``package.module:attribute`` or raise :class:`ValidationError`."""
    module, sep, attribute = path.strip().partition(":")
    if not sep or not _dotted(module) or not _dotted(attribute):
        raise ValidationError(
            f"metadata import path {path!r} must look like 'package.module:metadata'"
        )
    return module, attribute


def import_models(path: str, *, search_path: Path | None = None) -> tuple[MetaData, ModuleType]:
    """The ``MetaData`` named by ``path`` and the module it was found in.

    ``search_path`` (default: the current directory, as for ``python -m``) is put first on
    ``sys.path``. The attribute may be a ``MetaData`` or anything with a ``metadata``
    attribute (a declarative base, a registry). Every failure is a
    :class:`ConfigurationError` (a malformed path a :class:`ValidationError`).
    """
    from sqlalchemy import MetaData

    module_name, attribute = parse_metadata_path(path)
    root = str(search_path if search_path is not None else Path.cwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    details = {"metadata": path}
    try:
        # Whatever the module prints goes to stderr: stdout belongs to the command's
        # --json document.
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} (--metadata {path}): {exc}", details=details
        ) from None
    except SystemExit as exc:
        raise ConfigurationError(
            f"importing {module_name!r} (--metadata {path}) called sys.exit({exc.code!r}): "
            "a models module must not exit when imported",
            details=details,
        ) from None
    except Exception as exc:
        raise ConfigurationError(
            f"importing {module_name!r} (--metadata {path}) failed: {type(exc).__name__}: {exc}",
            details=details,
        ) from None
    value: Any = module
    try:
        for part in attribute.split("."):
            if not hasattr(value, part):
                raise ConfigurationError(
                    f"{module_name!r} has no attribute {attribute!r} (--metadata {path})",
                    details=details,
                )
            value = getattr(value, part)
        if not isinstance(value, MetaData):
            value = getattr(value, "metadata", None)
    except ConfigurationError:
        raise
    except Exception as exc:  # a property or module __getattr__ of the user's that raised
        raise ConfigurationError(
            f"reading {attribute!r} of {module_name!r} (--metadata {path}) failed: "
            f"{type(exc).__name__}: {exc}",
            details=details,
        ) from None
    if not isinstance(value, MetaData):
        raise ConfigurationError(
            f"{path} is not a SQLAlchemy MetaData, nor has a .metadata", details=details
        )
    return value, module
