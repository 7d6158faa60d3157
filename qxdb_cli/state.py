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
    return settings.with_url(state.database_url)
