"""URL rules: secrets masked by the URL's structure, never by searching the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from qxdb.engine import check_url
from qxdb.errors import ConfigurationError
from qxdb.urls import (
    async_driver_url,
    display_nats_url,
    display_url,
    is_utf8_text,
    printable,
    redact_secrets,
    split_nats_servers,
    sqlite_file,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # user == password: only the password field is masked, not every "postgres".
        (
            "postgresql+asyncpg://postgres:postgres@127.0.0.1:5999/postgres",
            "postgresql+asyncpg://postgres:***@127.0.0.1:5999/postgres",
        ),
        # An unencoded "@" (and "/"): the user information runs to the last "@".
        ("postgres://postgres:p@ss/w0rd@host/db", "postgres://postgres:***@host/db"),
        ("postgresql+asyncpg://app@db/app", "postgresql+asyncpg://app@db/app"),
        ("postgresql://db/app?user=a&password=zz", "postgresql://db/app?user=a&password=***"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        # NATS: a bare user part is a token; user:pass masks the pass.
        ("nats://s3cr3t-token@nats:4222", "nats://***@nats:4222"),
        ("tls://relay:pw@nats:4222", "tls://relay:***@nats:4222"),
        ("nats://nats:4222", "nats://nats:4222"),
    ],
)
def test_display_url_masks_the_password_field_only(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_a_nats_cluster_is_split_and_masked_server_by_server() -> None:
    value = "nats://tok@a:4222, nats://u:pw@b:4222,,nats://c:4222"
    assert split_nats_servers(value) == ["nats://tok@a:4222", "nats://u:pw@b:4222", "nats://c:4222"]
    assert display_nats_url(value) == "nats://***@a:4222,nats://u:***@b:4222,nats://c:4222"
    assert display_url(value) == display_nats_url(value)


def test_free_text_keeps_what_is_not_secret() -> None:
    url = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5999/x"
    text = f'cannot connect to {url}: password authentication failed for user "postgres"'
    assert redact_secrets(text, url) == (
        "cannot connect to postgresql+asyncpg://postgres:***@127.0.0.1:5999/x: "
        'password authentication failed for user "postgres"'
    )


def test_free_text_masks_the_password_as_a_whole_word() -> None:
    url = "postgresql+asyncpg://app:hunter2@db/app"
    masked = redact_secrets("auth failed (hunter2), not hunter22 or xhunter2", url)
    assert masked == "auth failed (***), not hunter22 or xhunter2"
    assert "p@ss" not in redact_secrets("dsn postgres://u:p@ss/w@h/d", None)


def test_libpq_spellings_get_the_async_driver() -> None:
    assert async_driver_url("postgres://u@h/d") == (
        "postgresql+asyncpg://u@h/d",
        "postgres:// read as postgresql+asyncpg:// (qxdb's async driver)",
    )
    assert async_driver_url("postgresql://u@h/d")[0] == "postgresql+asyncpg://u@h/d"
    assert async_driver_url("sqlite:///x.db")[0] == "sqlite+aiosqlite:///x.db"
    assert async_driver_url("postgresql+asyncpg://u@h/d") == ("postgresql+asyncpg://u@h/d", None)


def test_sqlite_file() -> None:
    assert sqlite_file("sqlite+aiosqlite:///./qxdb.sqlite3") == Path("qxdb.sqlite3")
    assert sqlite_file("sqlite+aiosqlite:////tmp/a.db?mode=ro") == Path("/tmp/a.db")
    assert sqlite_file("sqlite+aiosqlite://") is None
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://h/d") is None


@pytest.mark.parametrize(
    "bad",
    ["", ",", "nats://a:1,", "http://host:4222", "nats://", "nats://host:99999", "nats://s3cret@"],
)
def test_a_nats_url_nats_py_cannot_use_is_a_validation_error(bad: str) -> None:
    from qxdb.errors import ValidationError
    from qxdb.outbox.publishers import NatsJetStreamPublisher
    from qxdb.urls import check_nats_url

    with pytest.raises(ValidationError) as caught:
        check_nats_url(bad)
    assert "s3cret" not in str(caught.value)
    # The library's publisher refuses it the same way, before any connection.
    with pytest.raises(ValidationError):
        NatsJetStreamPublisher(bad)


def test_a_nats_cluster_is_its_servers() -> None:
    from qxdb.urls import check_nats_url

    assert check_nats_url(" nats://a:4222, tls://b:4223 ") == ["nats://a:4222", "tls://b:4223"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # A URL typed without its "://": the user information is still masked.
        ("postgresql//u:secretpw@h/db", "postgresql//u:***@h/db"),
        ("postgresql:/u:secretpw@h/db", "postgresql:/u:***@h/db"),
        ("postgresql:u:secretpw@h/db", "postgresql:***@h/db"),
        ("u:secretpw@h/db", "u:***@h/db"),
        ("postgresql//u:p@ss/w@h/db?password=zz", "postgresql//u:***@h/db?password=***"),
        ("postgresql//h/db", "postgresql//h/db"),
    ],
)
def test_a_malformed_url_is_masked_by_the_same_rule(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_a_malformed_urls_password_is_masked_in_free_text() -> None:
    url = "postgresql//u:secretpw@h/db"
    assert redact_secrets(f"cannot parse {url}: (secretpw)", url) == (
        "cannot parse postgresql//u:***@h/db: (***)"
    )


def test_an_undecodable_byte_is_displayed_not_crashed_on() -> None:
    # "\udcff" is how Python holds the byte 0xff of a non-UTF-8 command-line argument.
    url = "postgresql+asyncpg://us\udcffer:pa\udcffss@h/db"
    shown = display_url(url)
    assert shown == "postgresql+asyncpg://us\\udcffer:***@h/db"
    shown.encode("utf-8")  # printable
    assert not is_utf8_text(url)
    assert is_utf8_text("postgresql+asyncpg://üser:pä@h/db")
    assert printable("a\ud800b") == "a\\ud800b"
    with pytest.raises(ConfigurationError, match=r"not UTF-8 \(percent-encode") as info:
        check_url("postgresql+asyncpg://u:pa\udcffss@h/db")
    assert "u:***@h/db" in str(info.value)
    assert "pa" not in str(info.value).replace("percent", "")
