"""Engine settings that must really take effect."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from qxdb import DatabaseSettings, create_engine
from qxdb.engine import check_url, connect_checked
from qxdb.errors import ConfigurationError, DatabaseUnavailableError
from qxdb.settings import POSTGRES_MAX_TIMEOUT_MS


async def test_statement_timeout_fires_on_postgresql(postgres_url: str) -> None:
    engine = create_engine(DatabaseSettings(statement_timeout_ms=200), url=postgres_url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(2)"))
            await conn.rollback()
            # A quick statement on the same connection still works.
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_null_pool_and_queue_pool(postgres_url: str) -> None:
    for kind in ("null", "queue"):
        engine = create_engine(DatabaseSettings(pool_kind=kind, pool_size=2), url=postgres_url)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("select 1"))).scalar_one() == 1
            assert type(engine.pool).__name__ == (
                "NullPool" if kind == "null" else "AsyncAdaptedQueuePool"
            )
        finally:
            await engine.dispose()


async def test_unreachable_database_is_one_clear_error_without_password() -> None:
    url = "postgresql+asyncpg://app:hunter2secret@127.0.0.1:1/app"
    engine = create_engine(DatabaseSettings(connect_timeout_seconds=2), url=url)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            async with connect_checked(engine):
                pass
    finally:
        await engine.dispose()
    assert "hunter2secret" not in str(info.value)
    assert "app:***@127.0.0.1:1" in str(info.value)


async def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = create_engine(url=sqlite_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()


def _libpq_form(postgres_url: str, query: str) -> str:
    """The test database as a hosting provider hands it out: postgres://…?libpq options."""
    return "postgres://" + postgres_url.split("://", 1)[1].partition("?")[0] + "?" + query


async def test_libpq_url_options_are_applied_through_asyncpg(postgres_url: str) -> None:
    url = _libpq_form(
        postgres_url,
        "sslmode=disable&connect_timeout=5&application_name=qx-shop"
        "&options=-c%20lock_timeout%3D1234",
    )
    engine = create_engine(DatabaseSettings(statement_timeout_ms=4321), url=url)
    try:
        async with engine.connect() as conn:
            settings = (
                await conn.execute(
                    text(
                        "select current_setting('application_name'), "
                        "current_setting('lock_timeout'), current_setting('statement_timeout')"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    # The URL's options join the settings' timeouts instead of replacing them.
    assert tuple(settings) == ("qx-shop", "1234ms", "4321ms")


async def test_the_address_may_stay_in_the_query(postgres_url: str) -> None:
    # ?host=/run/postgresql (a socket directory) is the usual form; here the TCP address.
    parsed = make_url(postgres_url)
    url = (
        f"postgresql+asyncpg://{parsed.username}@/{parsed.database}"
        f"?host={parsed.host}&port={parsed.port}&application_name=qx-query"
    )
    engine = create_engine(url=url)
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("select current_setting('application_name')"))).scalar()
    finally:
        await engine.dispose()
    assert name == "qx-query"


async def test_sslmode_require_is_a_connection_outcome_not_a_type_error(
    postgres_url: str,
) -> None:
    plain = create_engine(url=postgres_url)
    try:
        async with plain.connect() as conn:
            server_has_tls = (await conn.execute(text("show ssl"))).scalar_one() == "on"
    finally:
        await plain.dispose()
    engine = create_engine(url=_libpq_form(postgres_url, "sslmode=require"))
    try:
        if server_has_tls:
            async with connect_checked(engine) as conn:
                assert (await conn.execute(text("select 1"))).scalar_one() == 1
        else:
            # The driver honours the mode: a server without TLS is refused, as libpq does.
            with pytest.raises(DatabaseUnavailableError, match="SSL"):
                async with connect_checked(engine):
                    pass
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ssl=bogus", r"option 'ssl' \(expected one of disable"),
        ("sslmode=REQUIRED", r"option 'sslmode'"),
        ("connect_timeout=abc", r"option 'connect_timeout'$"),
        ("connect_timeout=-1", r"option 'connect_timeout' \(expected a positive"),
        ("connect_timeout=inf", r"option 'connect_timeout'"),
        ("prepared_statement_cache_size=abc", r"option 'prepared_statement_cache_size'"),
        ("options=statement_timeout", r"option 'options' \(expected -c name=value"),
        ("sslcert=/tmp/x", r"unsupported option 'sslcert'"),
        ("sslmode=disable&ssl=disable", r"'ssl' repeats"),
        ("sslmode=disable&sslmode=require", r"'sslmode' is given twice"),
    ],
)
def test_bad_url_options_are_a_configuration_error(query: str, message: str) -> None:
    url = f"postgres://app:hunter2secret@127.0.0.1:5432/app?{query}"
    with pytest.raises(ConfigurationError, match=message) as info:
        create_engine(url=url)
    assert "hunter2secret" not in str(info.value)
    assert "\n" not in str(info.value)
    # check_url (what the command calls first) applies the same rule.
    with pytest.raises(ConfigurationError, match=message):
        check_url(DatabaseSettings(url=url).resolved_url)


async def test_postgresql_accepts_the_largest_timeouts_the_settings_allow(
    postgres_url: str,
) -> None:
    biggest = POSTGRES_MAX_TIMEOUT_MS
    engine = create_engine(
        DatabaseSettings(statement_timeout_ms=biggest, lock_timeout_ms=biggest), url=postgres_url
    )
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
