"""Global options, shared by every command, and the settings they resolve to.

Which database a command may use is decided here, once: a URL typed the libpq way
(``postgres://``) gets qxdb's async driver; the embedded SQLite default is refused when
the working directory's migration project records another dialect (a forgotten
``QX_DB__URL``, exit 2); and a SQLite file that does not exist is never created, except
by the commands that build a database (``migrate up``/``stamp``, ``revision
--autogenerate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qxdb.settings import DatabaseSettings


@dataclass(slots=True)
class CliState:
    database_url: str | None = None
    debug: bool = False


state = CliState()


def load_settings(*, creates: bool = False, config: Path | None = None) -> DatabaseSettings:
    """Settings from the environment, with ``--database-url`` on top; bad values are the
    library's ConfigurationError (exit 2).

    ``creates``: the command may create a missing SQLite file (it builds the database).
    ``config``: the migration config the command was given (``--config``), whose recorded
    dialect decides whether the embedded default may be used.
    """
    from qxdb.engine import check_url
    from qxdb.settings import DatabaseSettings
    from qxdb.urls import async_driver_url

    settings = DatabaseSettings().with_url(state.database_url)
    if not settings.url_is_default:
        typed = settings.url.get_secret_value() if settings.url is not None else ""
        note = async_driver_url(typed)[1]
        if note is not None:
            from qxdb_cli import render

            render.note(f"note: {note}")
        check_url(settings.resolved_url)
    else:
        from qxdb.migrations.project import refuse_unchosen_default

        refuse_unchosen_default(settings, config)
    if not creates:
        _require_existing_file(settings)
    return settings


def chosen_dialect() -> str | None:
    """The dialect of the URL the user gave (``--database-url``, ``QX_DB__URL``, ``.env``),
    or ``None`` when none is set."""
    from qxdb.settings import DatabaseSettings

    try:
        settings = DatabaseSettings().with_url(state.database_url)
    except Exception:
        return None  # a bad setting is reported by the commands that use the database
    if settings.url_is_default:
        return None
    return settings.dialect_name


def _require_existing_file(settings: DatabaseSettings) -> None:
    """Opening a missing SQLite file would create it, empty: say there is none instead."""
    from qxdb.errors import DatabaseUnavailableError
    from qxdb.urls import sqlite_file

    path = sqlite_file(settings.resolved_url)
    if path is None or path.exists():
        return
    hint = ""
    if settings.url_is_default:
        import os

        unset = "is empty" if "QX_DB__URL" in os.environ else "is not set"
        hint = (
            f" (the embedded SQLite default: QX_DB__URL {unset}; set it or pass "
            "--database-url; nothing was created)"
        )
    raise DatabaseUnavailableError(f"no database at {path.resolve()}{hint}")
