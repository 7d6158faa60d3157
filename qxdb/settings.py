"""``DatabaseSettings``: every knob, from ``QX_DB__*`` environment variables or ``.env``.

With no URL configured, qxdb uses an embedded SQLite file in the current directory
(:data:`~qxdb.urls.DEFAULT_SQLITE_URL`); :attr:`DatabaseSettings.url_is_default` says so,
and the command prints it, so a forgotten ``QX_DB__URL`` in production is obvious.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qxdb.urls import DEFAULT_SQLITE_URL, display_url, is_sqlite_url

__all__ = ["DatabaseSettings", "PoolKind", "validate_identifier"]

PoolKind = Literal["queue", "null"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def validate_identifier(name: str, *, what: str = "identifier") -> str:
    """Accept a plain SQL identifier (optionally ``schema.name``) or raise ``ValueError``."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(
            f"{what} {name!r} is not a plain SQL identifier (letters, digits, underscores; "
            "at most 63 characters; optionally schema.name)"
        )
    return name


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
        default=30.0, gt=0, description="wait for a free pooled connection"
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
        description="PostgreSQL statement_timeout for every connection; 0 or unset: none",
    )
    lock_timeout_ms: int | None = Field(
        default=None, ge=0, description="PostgreSQL lock_timeout for every connection"
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="give up connecting after this"
    )
    outbox_table: str = Field(
        default="qx_outbox_events", description="name of the transactional outbox table"
    )
    cursor_secret: SecretStr | None = Field(default=None, description="HMAC key that signs cursors")
    cursor_previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="older cursor keys that still verify (JSON list), for rotation",
    )
    cursor_max_age_seconds: int | None = Field(
        default=None, gt=0, description="refuse cursors older than this"
    )

    @field_validator("outbox_table")
    @classmethod
    def _check_outbox_table(cls, value: str) -> str:
        return validate_identifier(value, what="QX_DB__OUTBOX_TABLE")

    @property
    def url_is_default(self) -> bool:
        return self.url is None or not self.url.get_secret_value()

    @property
    def resolved_url(self) -> str:
        """The URL to connect with (contains the password: never print it)."""
        return (
            DEFAULT_SQLITE_URL
            if self.url_is_default or self.url is None
            else self.url.get_secret_value()
        )

    @property
    def display_url(self) -> str:
        return display_url(self.resolved_url)

    @property
    def dialect_name(self) -> str:
        return (
            "sqlite"
            if is_sqlite_url(self.resolved_url)
            else self.resolved_url.split(":", 1)[0].split("+", 1)[0]
        )

    def with_url(self, url: str | None) -> DatabaseSettings:
        """A copy pointing at another URL (the command's ``--database-url``)."""
        if not url:
            return self
        return self.model_copy(update={"url": SecretStr(url)})
