"""Where a service keeps its migrations, and what its models are.

A project's Alembic config is found in this order (the first that exists wins):

1. the path given explicitly (``--config`` / ``config=``);
2. ``alembic.ini`` in the working directory (a classic Alembic layout);
3. ``[tool.qxdb.migrate] config = "…/alembic.ini"`` in ``pyproject.toml``;
4. ``migrations/alembic.ini`` (what ``qxdb migrate init`` lays down by default).

The target metadata is named in the config as an import path, ``package.module:metadata``
(``[qxdb] metadata = …``), so the config file never holds a URL or code. ``[qxdb] dialect``
records which database the project is for (``qxdb migrate init`` writes it), so that a
forgotten ``QX_DB__URL`` does not send a PostgreSQL project to the embedded SQLite file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from qxdb.errors import ConfigurationError
from qxdb.metadata_import import import_models, parse_metadata_path

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import MetaData

    from qxdb.settings import DatabaseSettings

__all__ = [
    "DEFAULT_DIRECTORY",
    "DIALECT_OPTION",
    "METADATA_OPTION",
    "QXDB_SECTION",
    "find_config",
    "import_metadata",
    "parse_metadata_path",
    "recorded_dialect",
    "refuse_unchosen_default",
]

DEFAULT_DIRECTORY = "migrations"
QXDB_SECTION = "qxdb"
METADATA_OPTION = "metadata"
DIALECT_OPTION = "dialect"


def find_config(explicit: str | Path | None = None, *, cwd: Path | None = None) -> Path:
    """The project's Alembic config file, or :class:`ConfigurationError` saying where we looked."""
    cwd = cwd or Path.cwd()
    if explicit is not None:
        path = Path(explicit)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise ConfigurationError(
                f"migration config {explicit} does not exist", details={"config": str(path)}
            )
        return path
    candidates = [cwd / "alembic.ini"]
    from_pyproject = _pyproject_config(cwd / "pyproject.toml")
    if from_pyproject is not None:
        candidates.append(from_pyproject)
    candidates.append(cwd / DEFAULT_DIRECTORY / "alembic.ini")
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigurationError(
        "no migration config found (looked for alembic.ini, [tool.qxdb.migrate] config in "
        f"pyproject.toml, {DEFAULT_DIRECTORY}/alembic.ini): run "
        "'qxdb migrate init --metadata package.module:metadata' or pass --config",
        details={"cwd": str(cwd)},
    )


def recorded_dialect(
    explicit: str | Path | None = None, *, cwd: Path | None = None
) -> tuple[str, Path] | None:
    """``(dialect, config file)`` when the project's config records ``[qxdb] dialect``.

    ``None`` when there is no project here, or its config says nothing (or cannot be
    read: the commands that need the config report that themselves).
    """
    import configparser

    try:
        path = find_config(explicit, cwd=cwd)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path, encoding="utf-8")
        value = parser.get(QXDB_SECTION, DIALECT_OPTION, fallback="").strip().lower()
    except (ConfigurationError, configparser.Error, OSError, UnicodeDecodeError):
        return None
    return (value, path) if value else None


def refuse_unchosen_default(
    settings: DatabaseSettings, explicit: str | Path | None = None, *, cwd: Path | None = None
) -> None:
    """Refuse the embedded SQLite default in a project whose config records another dialect.

    A forgotten ``QX_DB__URL`` would otherwise create ``./qxdb.sqlite3`` and migrate it
    while the real database stays behind. The one place of this rule: the ``qxdb``
    commands and ``env.py`` under plain ``alembic`` both call it. ``explicit`` is the
    config given (``--config``, ``alembic -c``); a URL the user chose always passes.
    """
    if not settings.url_is_default:
        return
    found = recorded_dialect(explicit, cwd=cwd)
    if found is None or found[0] == "sqlite":
        return
    dialect, where = found
    raise ConfigurationError(
        f"QX_DB__URL is not set and this project is for {dialect} ({_shown(where, cwd)}): "
        "set QX_DB__URL or pass --database-url (nothing was done; qxdb does not fall back "
        "to the embedded SQLite file here)",
        details={"config": str(where), "dialect": dialect},
    )


def _shown(path: Path, cwd: Path | None) -> str:
    try:
        return str(path.resolve().relative_to((cwd or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def _pyproject_config(pyproject: Path) -> Path | None:
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {pyproject}: {exc}") from None
    value = data.get("tool", {}).get("qxdb", {}).get("migrate", {}).get("config")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{pyproject}: [tool.qxdb.migrate] config must be a string")
    path = Path(value)
    return path if path.is_absolute() else pyproject.parent / path


def import_metadata(path: str, *, search_path: Path | None = None) -> MetaData:
    """Import the ``MetaData`` named by ``package.module:attribute`` (see
    :func:`qxdb.metadata_import.import_models`); ``search_path`` is the project root, put
    first on ``sys.path`` the way Alembic's ``prepend_sys_path`` does."""
    return import_models(path, search_path=search_path)[0]


def metadata_path_from_config(config: Config) -> str:
    """The ``[qxdb] metadata`` option of an Alembic config."""
    value = config.get_section_option(QXDB_SECTION, METADATA_OPTION)
    if not value:
        raise ConfigurationError(
            f"{config.config_file_name}: no [{QXDB_SECTION}] {METADATA_OPTION} = "
            "package.module:metadata option"
        )
    return value.strip()
