"""``init_project``: lay down the qxdb Alembic template for a service.

The folder is self-contained (``alembic.ini`` sits inside it and points at the project
root with ``prepend_sys_path``), so ``alembic -c <folder>/alembic.ini …`` works from any
working directory and nothing is written outside the folder.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from qxdb.errors import ValidationError
from qxdb.migrations.project import DEFAULT_DIRECTORY, import_metadata, parse_metadata_path
from qxdb.resources import resource_dir

__all__ = ["TEMPLATE", "InitResult", "init_project", "template_dir"]

TEMPLATE = "qxdb"
_RENDERED = "alembic.ini.mako"


@dataclass(frozen=True, slots=True)
class InitResult:
    directory: Path
    config: Path
    metadata: str
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "config": str(self.config),
            "metadata": self.metadata,
            "files": [str(f) for f in self.files],
        }


def template_dir(name: str = TEMPLATE) -> Path:
    return resource_dir("alembic_templates") / name


def init_project(
    directory: str | Path = DEFAULT_DIRECTORY,
    *,
    metadata: str,
    project_root: Path | None = None,
    check_import: bool = True,
    dialect: str = "sqlite",
) -> InitResult:
    """Create ``directory`` from the qxdb template; refuse if it exists and is not empty.

    ``metadata`` is the import path of the models, ``package.module:metadata``; with
    ``check_import`` it must import (from ``project_root``, default the working directory).
    ``dialect`` (``postgresql``, ``sqlite``, …) is recorded as ``[qxdb] dialect``: the
    command then refuses the embedded SQLite default for a project made for another one.
    """
    if not dialect.isidentifier():
        raise ValidationError(f"invalid dialect {dialect!r}: expected a name such as postgresql")
    root = (project_root or Path.cwd()).resolve()
    target = Path(directory)
    target = (target if target.is_absolute() else root / target).resolve()
    parse_metadata_path(metadata)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValidationError(
            f"{_shown(target, root)} already exists and is not empty; nothing was written "
            "(pick another folder or remove it)",
            details={"directory": str(target)},
        )
    if check_import:
        import_metadata(metadata, search_path=root)

    source = template_dir()
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for item in sorted(source.iterdir()):
        if item.name == "__pycache__" or item.name == _RENDERED:
            continue
        destination = target / item.name
        if item.is_dir():
            shutil.copytree(item, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(item, destination)
        written.append(destination)
    versions = target / "versions"
    versions.mkdir(exist_ok=True)
    written.append(versions)

    config = target / "alembic.ini"
    config.write_text(
        _render_ini(source / _RENDERED, target, root, metadata, dialect.lower()), encoding="utf-8"
    )
    written.append(config)
    return InitResult(directory=target, config=config, metadata=metadata, files=sorted(written))


def _render_ini(template: Path, target: Path, root: Path, metadata: str, dialect: str) -> str:
    from mako.template import Template  # type: ignore[import-untyped]

    relative_root = os.path.relpath(root, target)
    prepend = "%(here)s" if relative_root == "." else f"%(here)s{os.sep}{relative_root}"
    rendered: str = Template(filename=str(template)).render_unicode(
        metadata=metadata,
        dialect=dialect,
        prepend_sys_path=prepend,
        config_path=_shown(target / "alembic.ini", root),
    )
    return rendered


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
