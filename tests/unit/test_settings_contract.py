"""Hostile settings, URLs and durations yield only qxdb errors (never pydantic's
ValidationError, a bare ValueError/TypeError or an OverflowError)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from qxdb import ConfigurationError, DatabaseSettings, ValidationError, create_engine, display_url
from qxdb.durations import ago, parse_age, parse_duration, parse_instant, parse_timestamp
from qxdb.errors import Error

FIELDS = sorted(DatabaseSettings.model_fields)
# os.environ cannot hold NUL; everything else a shell can export is fair game.
ENV_TEXT = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=40)
ANY_VALUE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def failure(call: Any, allowed: type[Error]) -> Error | None:
    """Run ``call``; return the ``allowed`` qxdb error it raised, None on success. Any
    other exception propagates and fails the test."""
    try:
        call()
    except allowed as exc:
        return exc
    return None


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("QX_DB__"):
            monkeypatch.delenv(key)


@hsettings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(FIELDS), value=ENV_TEXT)
@example(field="pool_size", value="abc")
@example(field="cursor_previous_secrets", value="a,b")
@example(field="cursor_previous_secrets", value='["a", 1]')
@example(field="outbox_table", value="qx_outbox_events\n")
@example(field="pool_kind", value="huge")
def test_environment_values_are_accepted_or_a_configuration_error(field: str, value: str) -> None:
    variable = f"QX_DB__{field.upper()}"
    with environ({variable: value}):
        refused = failure(DatabaseSettings, ConfigurationError)
    if refused is not None:
        assert variable in refused.message
        # Never echo a value (it may be a password), except the name an identifier rule
        # refused, which the operator needs to see.
        assert value not in refused.message or len(value) < 3 or field == "outbox_table"


@hsettings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(FIELDS), value=ANY_VALUE)
def test_keyword_values_are_accepted_or_a_configuration_error(field: str, value: Any) -> None:
    failure(lambda: DatabaseSettings(**{field: value}), ConfigurationError)


def test_a_secret_value_never_appears_in_the_error() -> None:
    with (
        environ({"QX_DB__CURSOR_MAX_AGE_SECONDS": "hunter2-not-a-number"}),
        pytest.raises(ConfigurationError) as refused,
    ):
        DatabaseSettings()
    assert "hunter2" not in str(refused.value)
    assert "QX_DB__CURSOR_MAX_AGE_SECONDS" in refused.value.message


URL_PARTS = st.text(st.characters(codec="utf-8"), max_size=12)


@hsettings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scheme=st.sampled_from(
        ["postgresql+asyncpg", "sqlite+aiosqlite", "postgresql", "mysql+nodriver", "x", ""]
    ),
    userinfo=URL_PARTS,
    host=URL_PARTS,
    port=st.one_of(URL_PARTS, st.integers().map(str)),
    query=st.dictionaries(URL_PARTS, URL_PARTS, max_size=2),
    raw=st.one_of(st.none(), st.text(max_size=60)),
)
@example(
    scheme="postgresql+asyncpg", userinfo="app:pw", host="db", port="99999", query={}, raw=None
)
@example(scheme="postgresql+asyncpg", userinfo="a:p", host="h", port="port", query={}, raw=None)
def test_create_engine_refuses_bad_urls_with_a_configuration_error(
    scheme: str, userinfo: str, host: str, port: str, query: dict[str, str], raw: str | None
) -> None:
    from urllib.parse import urlencode

    url = raw if raw is not None else f"{scheme}://{userinfo}@{host}:{port}/d?{urlencode(query)}"
    made: list[Any] = []
    refused = failure(lambda: made.append(create_engine(url=url)), ConfigurationError)
    for engine in made:
        engine.sync_engine.dispose()
    if refused is not None and ":" in userinfo and raw is None:
        secret = userinfo.split(":", 1)[1]
        # (unless the same text is also a visible part of the URL, such as the host)
        assert len(secret) < 3 or secret not in refused.message or secret in display_url(url)


def test_a_bad_port_is_a_configuration_error_from_create_engine() -> None:
    for port in ("99999", "port", "-1"):
        with pytest.raises(ConfigurationError, match="invalid database URL") as refused:
            create_engine(url=f"postgresql+asyncpg://app:s3cret@db:{port}/app")
        assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigurationError, match="blank"):
        create_engine(url="   ")


@hsettings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=30))
@example(text="999999999w")
@example(text="999999999d")
@example(text="1000000d")
@example(text="0001-01-01T00:00:00+14:00")
@example(text="9999-12-31T23:59:59-14:00")
def test_durations_and_instants_raise_only_validation_errors(text: str) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    for parse in (
        lambda: parse_duration(text),
        lambda: parse_instant(text, now=now),
        lambda: parse_timestamp(text),
    ):
        failure(parse, ValidationError)


def test_a_duration_before_year_one_is_a_validation_error() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(ValidationError, match="before year 1"):
        parse_instant("999999d", now=now)
    with pytest.raises(ValidationError, match="before year 1"):
        ago(timedelta(days=999_999), now=now, what="--older-than")
    with pytest.raises(ValidationError, match="longer than"):
        parse_duration("999999999w")
    assert isinstance(ValidationError("x"), Error)


@pytest.mark.parametrize("typed", ["999999999d", " 999999999d ", "100000w5000000d"])
def test_an_age_error_quotes_what_was_typed(typed: str) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        parse_age(typed, what="--older-than", now=now)
    assert f"invalid --older-than {typed!r}: that reaches before year 1" == str(caught.value)
    with pytest.raises(ValidationError) as caught:
        parse_instant(typed, now=now, what="--since")
    assert repr(typed) in str(caught.value)


@pytest.mark.parametrize("text", ["\uff17d", "\u0661d", "1\u0660m"])
def test_a_duration_is_ascii_digits(text: str) -> None:
    with pytest.raises(ValidationError, match="use a whole number and a unit"):
        parse_duration(text)


def test_an_age_is_its_duration_and_cutoff() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_age("1d2h", now=now) == (timedelta(hours=26), now - timedelta(hours=26))
    assert parse_age("0d", now=now) == (timedelta(0), now)
    with pytest.raises(ValidationError, match="'0s': must be longer than zero"):
        parse_age("0s", what="--older-than", positive=True)


HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([object(), DatabaseSettings, {"url": "x"}]),
)


@hsettings(max_examples=200, deadline=None)
@given(settings=HOSTILE, url=HOSTILE)
def test_engine_entry_points_take_hostile_arguments_with_configuration_errors(
    settings: Any, url: Any
) -> None:
    from qxdb import make_session_factory

    made: list[Any] = []
    failure(lambda: made.append(create_engine(settings, url=url)), ConfigurationError)
    for engine in made:
        engine.sync_engine.dispose()
    failure(lambda: make_session_factory(settings), ConfigurationError)
