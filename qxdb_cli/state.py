"""Global options, shared by every command, and the settings they resolve to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qxdb.settings import DatabaseSettings


@dataclass(slots=True)
class CliState:
    database_url: str | None = None
    debug: bool = False


state = CliState()


def load_settings() -> DatabaseSettings:
    """Settings from the environment, with ``--database-url`` on top; bad values are the
    library's ConfigurationError (exit 2)."""
    from qxdb.engine import check_url
    from qxdb.settings import DatabaseSettings

    settings = DatabaseSettings().with_url(state.database_url)
    if not settings.url_is_default:
        check_url(settings.resolved_url)
    return settings
