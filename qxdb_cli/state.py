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
    """Settings from the environment, with ``--database-url`` on top; bad values exit 2."""
    from pydantic import ValidationError as PydanticValidationError

    from qxdb.errors import ConfigurationError
    from qxdb.settings import DatabaseSettings

    try:
        settings = DatabaseSettings()
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigurationError(
            f"invalid setting QX_DB__{where.upper()}: {first.get('msg')}"
        ) from None
    settings = settings.with_url(state.database_url)
    if not settings.url_is_default:
        _check_url(settings.resolved_url, settings.display_url)
    return settings


def _check_url(url: str, shown: str) -> None:
    """Catch a malformed URL here, with its name, not as a driver's bare ValueError later."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from qxdb.errors import ConfigurationError

    if not url.strip():
        raise ConfigurationError("the database URL is blank: set QX_DB__URL or --database-url")
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsing the port is the check
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"invalid database URL {shown!r}: expected dialect+driver://user@host:port/database"
        ) from None
