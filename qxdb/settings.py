"""``DatabaseSettings``: every knob, from ``QX_DB__*`` environment variables or ``.env``.

With no URL configured, qxdb uses an embedded SQLite file in the current directory
(:data:`~qxdb.urls.DEFAULT_SQLITE_URL`); :attr:`DatabaseSettings.url_is_default` says so,
and the command prints it, so a forgotten ``QX_DB__URL`` in production is obvious.

Every problem with a setting, from the environment, ``.env`` or a keyword argument, is a
:class:`~qxdb.errors.ConfigurationError` naming the variable: pydantic's own errors never
leave this module.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError as PydanticValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from qxdb.core.defaults import OUTBOX_TABLE_NAME, POSTGRES_MAX_TIMEOUT_MS
from qxdb.core.env import parse_secret_list
from qxdb.core.identifiers import (
    InvalidIdentifier,
    validate_identifier as _identifier_rule,
    validate_outbox_name,
)
from qxdb.errors import ConfigurationError
from qxdb.urls import DEFAULT_SQLITE_URL, async_driver_url, backend_of, display_url

__all__ = [
    "POSTGRES_MAX_TIMEOUT_MS",
    "DatabaseSettings",
    "PoolKind",
    "configured_outbox_table",
    "validate_identifier",
]

PoolKind = Literal["queue", "null"]
_ENV_PREFIX = "QX_DB__"


def validate_identifier(name: str, *, what: str = "identifier") -> str:
    """Accept a plain SQL identifier (optionally ``schema.name``) or raise
    :class:`~qxdb.errors.ConfigurationError` (the rule: :mod:`qxdb.core.identifiers`)."""
    try:
        return _identifier_rule(name, what=what)
    except InvalidIdentifier as exc:
        raise ConfigurationError(str(exc), details={"name": repr(name)}) from None


class DatabaseSettings(BaseSettings):
    """Database configuration. Environment: ``QX_DB__URL``, ``QX_DB__POOL_SIZE``, …"""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="QX_DB__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    url: SecretStr | None = Field(
        default=None, description="SQLAlchemy async URL; unset means the embedded SQLite file"
    )
    pool_size: int = Field(default=10, ge=1, description="connections kept open (queue pool)")
    max_overflow: int = Field(default=10, ge=0, description="extra connections beyond pool_size")
    pool_timeout_seconds: float = Field(
        default=30.0, gt=0, allow_inf_nan=False, description="wait for a free pooled connection"
    )
    pool_recycle_seconds: int = Field(
        default=1800, description="recycle connections older than this (-1: never)"
    )
    pool_pre_ping: bool = Field(default=True, description="test a pooled connection before use")
    pool_kind: PoolKind = Field(
        default="queue", description="queue, or null for no pooling (serverless)"
    )
    echo: bool = Field(default=False, description="log every SQL statement (SQLAlchemy echo)")
    statement_timeout_ms: int | None = Field(
        default=10_000,
        ge=0,
        le=POSTGRES_MAX_TIMEOUT_MS,
        description="PostgreSQL statement_timeout for every connection; 0 or unset: none",
    )
    lock_timeout_ms: int | None = Field(
        default=None,
        ge=0,
        le=POSTGRES_MAX_TIMEOUT_MS,
        description="PostgreSQL lock_timeout for every connection",
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, description="give up connecting after this"
    )
    outbox_table: str = Field(
        default=OUTBOX_TABLE_NAME, description="name of the transactional outbox table"
    )
    cursor_secret: SecretStr | None = Field(default=None, description="HMAC key that signs cursors")
    # NoDecode: the text is parsed by the one parser of this variable (comma-separated or
    # a JSON list), not by pydantic-settings' JSON decoding of list fields.
    cursor_previous_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="older cursor keys that still verify (comma-separated or a JSON list)",
    )
    cursor_max_age_seconds: int | None = Field(
        default=None, gt=0, description="refuse cursors older than this"
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except PydanticValidationError as exc:
            raise _configuration_error(exc) from None
        except SettingsError as exc:
            raise ConfigurationError(f"invalid settings: {exc}") from None

    @field_validator("outbox_table")
    @classmethod
    def _check_outbox_table(cls, value: str) -> str:
        return validate_outbox_name(value, what="the name")

    @field_validator("cursor_previous_secrets", mode="before")
    @classmethod
    def _parse_previous_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return list(parse_secret_list(value))
        return value

    @property
    def url_is_default(self) -> bool:
        return self.url is None or not self.url.get_secret_value()

    @property
    def resolved_url(self) -> str:
        """The URL to connect with (contains the password: never print it).

        A URL typed without an async driver (``postgres://``, ``postgresql://``,
        ``sqlite://``, as hosting providers hand them out) gets qxdb's: asyncpg or aiosqlite.
        """
        if self.url_is_default or self.url is None:
            return DEFAULT_SQLITE_URL
        return async_driver_url(self.url.get_secret_value())[0]

    @property
    def display_url(self) -> str:
        return display_url(self.resolved_url)

    @property
    def dialect_name(self) -> str:
        return backend_of(self.resolved_url)

    def with_url(self, url: str | None) -> DatabaseSettings:
        """A copy pointing at another URL (the command's ``--database-url``)."""
        if not url:
            return self
        return self.model_copy(update={"url": SecretStr(url)})


def _configuration_error(exc: PydanticValidationError) -> ConfigurationError:
    """One line naming the variable and what is wrong with it (never its value: it may be
    a password)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
    message = str(first.get("msg", "invalid value"))
    # pydantic prefixes the messages of ValueErrors raised by validators.
    message = message.removeprefix("Value error, ")
    variable = f"{_ENV_PREFIX}{field.split('.')[0].upper()}"
    return ConfigurationError(
        f"invalid setting {variable}: {message}",
        details={"setting": variable, "errors": exc.error_count()},
    )


def configured_outbox_table() -> str:
    """The outbox table of the configuration (``QX_DB__OUTBOX_TABLE``, or the default):
    the default of every outbox entry point that is not given a table."""
    return DatabaseSettings().outbox_table
