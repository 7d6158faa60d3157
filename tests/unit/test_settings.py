from __future__ import annotations

from pathlib import Path

import pytest

from qxdb import ConfigurationError, DatabaseSettings, display_url
from qxdb.urls import redact_secrets


def test_default_is_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QX_DB__URL", raising=False)
    settings = DatabaseSettings()
    assert settings.url_is_default
    assert settings.resolved_url == "sqlite+aiosqlite:///./qxdb.sqlite3"
    assert settings.dialect_name == "sqlite"


def test_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QX_DB__URL", "postgresql+asyncpg://app:s3cret@db:5432/app")
    monkeypatch.setenv("QX_DB__POOL_SIZE", "3")
    monkeypatch.setenv("QX_DB__STATEMENT_TIMEOUT_MS", "1500")
    monkeypatch.setenv("QX_DB__POOL_KIND", "null")
    settings = DatabaseSettings()
    assert not settings.url_is_default
    assert settings.pool_size == 3
    assert settings.statement_timeout_ms == 1500
    assert settings.pool_kind == "null"
    assert "s3cret" not in settings.display_url
    assert "s3cret" not in repr(settings)


def test_reads_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("QX_DB__URL", "QX_DB__MAX_OVERFLOW", "QX_DB__OUTBOX_TABLE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text(
        "QX_DB__URL=postgresql+asyncpg://u:pw@h/d\nQX_DB__MAX_OVERFLOW=0\nQX_DB__OUTBOX_TABLE=events_out\n"
    )
    settings = DatabaseSettings()
    assert settings.resolved_url == "postgresql+asyncpg://u:pw@h/d"
    assert settings.max_overflow == 0
    assert settings.outbox_table == "events_out"


def test_environment_beats_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("QX_DB__POOL_SIZE=4\n")
    monkeypatch.setenv("QX_DB__POOL_SIZE", "9")
    assert DatabaseSettings().pool_size == 9


@pytest.mark.parametrize(
    "name",
    [
        "events; drop table x",
        "1abc",
        "a.b.c",
        "x" * 64,
        "",
        # re.match with "$" accepted a trailing newline, then wrote the name unquoted.
        "qx_outbox_events\n",
        # 48 characters: ix_<name>_published_at would be 64 bytes, over PostgreSQL's 63.
        "x" * 48,
        "événements",
        ".events",
        "audit.",
    ],
)
def test_outbox_table_must_be_an_identifier(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("QX_DB__OUTBOX_TABLE", name)
    with pytest.raises(ConfigurationError, match=r"QX_DB__OUTBOX_TABLE.*identifier"):
        DatabaseSettings()


@pytest.mark.parametrize("name", ["x" * 47, "audit." + "y" * 47, "s" * 63 + ".events"])
def test_outbox_table_names_up_to_the_limit_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("QX_DB__OUTBOX_TABLE", name)
    assert DatabaseSettings().outbox_table == name


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+asyncpg://app:pw%40rd@db:5432/app",
            "postgresql+asyncpg://app:***@db:5432/app",
        ),
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
        (
            "postgresql+asyncpg://db/app?user=a&password=zz",
            "postgresql+asyncpg://db/app?user=a&password=***",
        ),
        ("sqlite+aiosqlite:///./qxdb.sqlite3", "sqlite+aiosqlite:///./qxdb.sqlite3"),
        # Unencoded "/", "?", "#" in a password: SQLAlchemy connects with them, urlsplit
        # alone would end the host part there and show the password.
        ("postgresql+asyncpg://app:pa/ss@db/app", "postgresql+asyncpg://app:***@db/app"),
        ("postgresql+asyncpg://app:pa?ss@db/app", "postgresql+asyncpg://app:***@db/app"),
        ("postgresql+asyncpg://app:pa#ss@db:5432/app", "postgresql+asyncpg://app:***@db:5432/app"),
    ],
)
def test_display_url_hides_passwords(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_redact_secrets_in_free_text() -> None:
    url = "postgresql+asyncpg://app:pa55word@db/app"
    text = f"failed for {url} with password pa55word"
    assert "pa55word" not in redact_secrets(text, url)
    assert "pa55word" not in redact_secrets("connect to postgresql://x:pa55word@h/d", None)


@pytest.mark.parametrize(
    "url", ["postgresql+asyncpg://app:pa/ss@db/app", "postgresql+asyncpg://app:pa%2Fss@db/app"]
)
def test_redact_secrets_catches_every_spelling(url: str) -> None:
    # A driver echoes the password as it received it: percent-decoded.
    spelled = url.split(":")[2].split("@")[0]
    text = redact_secrets(f"auth failed for {url}: password 'pa/ss' ({spelled})", url)
    assert "pa/ss" not in text
    assert spelled not in text


@pytest.mark.parametrize(
    ("typed", "used"),
    [
        ("postgres://app:pw@db:5432/app", "postgresql+asyncpg://app:pw@db:5432/app"),
        ("postgresql://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("sqlite:///./x.sqlite3", "sqlite+aiosqlite:///./x.sqlite3"),
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
    ],
)
def test_urls_without_an_async_driver_get_qxdbs(typed: str, used: str) -> None:
    # Library users get the same reading as the command: hosting providers hand out
    # postgres:// URLs, and create_engine must not fail on them.
    settings = DatabaseSettings(url=typed)
    assert settings.resolved_url == used
    assert settings.dialect_name == used.split("+")[0]


@pytest.mark.parametrize("variable", ["QX_DB__STATEMENT_TIMEOUT_MS", "QX_DB__LOCK_TIMEOUT_MS"])
def test_timeouts_are_bounded_by_postgresqls_maximum(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.chdir(tmp_path)
    field = variable.removeprefix("QX_DB__").lower()
    monkeypatch.setenv(variable, "2147483647")
    assert getattr(DatabaseSettings(), field) == 2_147_483_647
    for too_big in ("2147483648", "99999999999999"):
        monkeypatch.setenv(variable, too_big)
        with pytest.raises(ConfigurationError, match=rf"{variable}: .*2147483647"):
            DatabaseSettings()
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigurationError, match=variable):
        DatabaseSettings(**{field: 2**31})


@pytest.mark.parametrize("field", ["connect_timeout_seconds", "pool_timeout_seconds"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_timeouts_in_seconds_are_finite(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=f"QX_DB__{field.upper()}"):
        DatabaseSettings(**{field: value})
