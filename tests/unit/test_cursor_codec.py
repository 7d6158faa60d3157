"""The cursor codec: exact round trips, signing, rotation, expiry, the reference format."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings, strategies as st

from qxdb import CursorCodec, CursorError, decode_cursor, encode_cursor
from qxdb.cursor import cursor_fingerprint

offsets = st.builds(
    lambda minutes, seconds: timezone(timedelta(minutes=minutes, seconds=seconds)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
    st.sampled_from([0, 0, 0, 17]),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=20),
    st.datetimes(timezones=offsets),
    st.datetimes(),
    st.dates(),
    st.uuids(),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.floats(allow_nan=False, allow_infinity=False),
)
value_maps = st.dictionaries(st.text(max_size=8), values, max_size=4)


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and spelled the same (precision, offset, sign of zero)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal | float):
        return repr(a) == repr(b)
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset() and a.isoformat() == b.isoformat()
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(value_maps, st.booleans())
def test_every_value_type_round_trips_exactly(data: dict[str, Any], signed: bool) -> None:
    codec = CursorCodec(secret="s3cret") if signed else CursorCodec()
    decoded = codec.decode(codec.encode(data, fingerprint="fp", direction="previous"))
    assert list(decoded.values) == list(data)
    for key, value in data.items():
        assert _same(decoded.values[key], value), (key, value, decoded.values[key])
    assert (decoded.signed, decoded.verified) == (signed, signed)
    assert decoded.fingerprint == "fp"
    assert decoded.direction == "previous"


def test_known_values_keep_microseconds_offset_and_decimal_places() -> None:
    moment = datetime(
        2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    data = {
        "at": moment,
        "day": date(2024, 2, 29),
        "id": UUID("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        "price": Decimal("12.3400"),
        "n": 2**70,
        "s": "é\u2028",
        "flag": False,
        "none": None,
    }
    back = decode_cursor(encode_cursor(data, codec=CursorCodec()), codec=CursorCodec())
    assert back == data
    assert back["at"].microsecond == 123456
    assert back["at"].utcoffset() == timedelta(hours=5, minutes=30)
    assert str(back["price"]) == "12.3400"
    assert back["flag"] is False


def test_reference_tokens_still_decode_to_their_plain_values() -> None:
    # What qx-db 0.1.0's encode_cursor produced: base64url JSON without padding, values str()'d.
    raw = json.dumps({"created_at": "2024-01-02T03:04:05.000006+00:00", "id": "abc"}).encode()
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    decoded = CursorCodec().decode(token)
    assert decoded.version == 0
    assert decoded.values == {"created_at": "2024-01-02T03:04:05.000006+00:00", "id": "abc"}
    assert decode_cursor(token, codec=CursorCodec())["id"] == "abc"


def test_reference_tokens_are_refused_when_a_signature_is_required() -> None:
    token = base64.urlsafe_b64encode(b'{"id":"abc"}').decode().rstrip("=")
    with pytest.raises(CursorError) as caught:
        CursorCodec(secret="k").decode(token)
    assert caught.value.reason == "unsigned"
    assert CursorCodec(secret="k", require_signature=False).decode(token).values == {"id": "abc"}


def test_unsigned_token_refused_by_a_signing_codec() -> None:
    token = CursorCodec().encode({"id": 1})
    with pytest.raises(CursorError) as caught:
        CursorCodec(secret="k").decode(token)
    assert caught.value.reason == "unsigned"
    assert isinstance(caught.value, ValueError)


def test_rotation_old_key_still_verifies_and_says_so() -> None:
    old = CursorCodec(secret="old-key").encode({"id": 1})
    rotated = CursorCodec(secret="new-key", previous_secrets=["old-key"])
    decoded = rotated.decode(old)
    assert decoded.verified
    assert decoded.key_index == 1
    assert rotated.decode(rotated.encode({"id": 2})).key_index == 0
    with pytest.raises(CursorError) as caught:
        CursorCodec(secret="new-key").decode(old)
    assert caught.value.reason == "tampered"


def test_signed_token_read_without_a_secret_is_signed_but_not_verified() -> None:
    decoded = CursorCodec().decode(CursorCodec(secret="k").encode({"id": 1}))
    assert (decoded.signed, decoded.verified, decoded.values) == (True, False, {"id": 1})


def test_max_age() -> None:
    now = [1_800_000_000.0]
    codec = CursorCodec(secret="k", max_age_seconds=60, clock=lambda: now[0])
    token = codec.encode({"id": 1})
    now[0] += 60
    assert codec.decode(token).values == {"id": 1}
    now[0] += 1
    with pytest.raises(CursorError) as caught:
        codec.decode(token)
    assert caught.value.reason == "expired"
    assert "maximum age is 60 s" in caught.value.message


def test_max_age_refuses_tokens_without_an_issue_time() -> None:
    token = base64.urlsafe_b64encode(b'{"id":"abc"}').decode().rstrip("=")
    with pytest.raises(CursorError) as caught:
        CursorCodec(max_age_seconds=10).decode(token)
    assert caught.value.reason == "expired"


def test_size_cap_on_decode_and_encode() -> None:
    codec = CursorCodec(max_token_length=100)
    with pytest.raises(CursorError) as caught:
        codec.decode("A" * 101)
    assert caught.value.reason == "too_large"
    with pytest.raises(CursorError, match="over the cap") as too_large:
        codec.encode({"s": "x" * 200})
    assert too_large.value.reason == "too_large"


def test_unknown_version_is_wrong_version() -> None:
    with pytest.raises(CursorError) as caught:
        CursorCodec().decode("v2.eyJrIjp7fX0")
    assert caught.value.reason == "wrong_version"


def test_encode_refuses_values_it_cannot_restore() -> None:
    with pytest.raises(CursorError, match="cannot hold a bytes"):
        CursorCodec().encode({"b": b"x"})
    with pytest.raises(CursorError, match="non-finite"):
        CursorCodec().encode({"f": float("nan")})


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        # Over the default 4,096 cap, by the module shortcut (the user's default codec).
        (lambda: encode_cursor({"s": "x" * 5000}, codec=CursorCodec()), "too_large"),
        (
            lambda: CursorCodec().encode_position(
                {"s": "x" * 5000, "id": "y" * 5000}, row_key="id"
            ),
            "too_large",
        ),
        (lambda: CursorCodec().encode_position({"s": "x" * 5000}, row_key="id"), "malformed"),
        (lambda: CursorCodec().encode({"b": b"x"}), "malformed"),
        (lambda: CursorCodec().encode({"o": object()}), "malformed"),
        (lambda: CursorCodec().encode({"f": float("inf")}), "malformed"),
        # Lone surrogates (what undecodable bytes become in Python text): in a value, a
        # field name, a fingerprint.
        (lambda: CursorCodec().encode({"s": "\ud800"}), "malformed"),
        (lambda: CursorCodec().encode({"\udcff": 1}), "malformed"),
        (lambda: CursorCodec().encode({"a": 1}, fingerprint="\udfff"), "malformed"),
        (lambda: CursorCodec().encode({"a": 1}, fingerprint=5), "malformed"),  # type: ignore[arg-type]
        (lambda: CursorCodec().encode({"a": 1}, direction="up"), "malformed"),  # type: ignore[arg-type]
        (lambda: CursorCodec().encode({"a": 1}, issued_at=float("nan")), "malformed"),
        (lambda: CursorCodec(secret="k").encode({"s": "\ud800"}), "malformed"),
    ],
)
def test_every_encode_failure_is_a_cursor_error(call: Any, reason: str) -> None:
    with pytest.raises(CursorError) as caught:
        call()
    assert caught.value.reason == reason
    assert "\n" not in caught.value.message


def _raw_token(json_text: bytes, *, version: bool = True) -> str:
    body = base64.urlsafe_b64encode(json_text).decode().rstrip("=")
    return f"v1.{body}" if version else body


@pytest.mark.parametrize(
    "token",
    [
        _raw_token(rb'{"k":{"a":"\ud800"},"d":"n","t":1700000000}'),
        _raw_token(rb'{"k":{"\udc80":1},"d":"n","t":1700000000}'),
        _raw_token(rb'{"k":{"a":1},"f":"\uDFFF","d":"n","t":1700000000}'),
        _raw_token(rb'{"k":{"a":["n","\ud800"]},"d":"n","t":1700000000}'),
        _raw_token(rb'{"a":"x\ud800y"}', version=False),
        _raw_token(rb'{"a":["\ude00\ud83d"]}', version=False),  # a pair in the wrong order
    ],
)
def test_decode_refuses_lone_surrogates(token: str) -> None:
    with pytest.raises(CursorError) as caught:
        decode_cursor(token, codec=CursorCodec())
    assert caught.value.reason == "malformed"
    assert "surrogate" in caught.value.message or "decimal" in caught.value.message


def test_decode_keeps_escaped_text_that_is_valid_unicode() -> None:
    # A proper surrogate pair and a control character, as \u escapes, are ordinary text.
    token = _raw_token(rb'{"k":{"a":"\ud83d\ude00\u0007"},"d":"n","t":1700000000}')
    assert decode_cursor(token, codec=CursorCodec()) == {"a": "\U0001f600\x07"}
    assert decode_cursor(encode_cursor({"a": "\x00\U0001f600"}, codec=CursorCodec())) == {
        "a": "\x00\U0001f600"
    }


def test_from_env_reads_secret_rotation_and_max_age() -> None:
    codec = CursorCodec.from_env(
        {
            "QX_DB__CURSOR_SECRET": "new",
            "QX_DB__CURSOR_PREVIOUS_SECRETS": '["old1", "old2"]',
            "QX_DB__CURSOR_MAX_AGE_SECONDS": "30",
        }
    )
    assert codec.signs
    assert codec.max_age_seconds == 30
    assert codec.decode(CursorCodec(secret="old2").encode({"a": 1})).key_index == 2
    assert CursorCodec.from_env({}).signs is False
    with pytest.raises(ValueError, match="MAX_AGE"):
        CursorCodec.from_env({"QX_DB__CURSOR_MAX_AGE_SECONDS": "soon"})


def test_from_settings_matches_from_env() -> None:
    from pydantic import SecretStr

    from qxdb.settings import DatabaseSettings

    settings = DatabaseSettings(
        cursor_secret=SecretStr("new"),
        cursor_previous_secrets=[SecretStr("old")],
        cursor_max_age_seconds=5,
    )
    codec = CursorCodec.from_settings(settings)
    assert codec.max_age_seconds == 5
    assert codec.decode(CursorCodec(secret="old").encode({"a": 1})).key_index == 1


def test_fingerprint_binds_resource_sort_and_filters_but_not_filter_order() -> None:
    sort = [("created_at", "desc", "first"), ("id", "desc", "last")]
    base = cursor_fingerprint(
        "orders", sort, [("status", "eq", "paid"), ("total", "gt", Decimal("5"))]
    )
    assert base == cursor_fingerprint(
        "orders", sort, [("total", "gt", Decimal("5")), ("status", "eq", "paid")]
    )
    assert base != cursor_fingerprint(
        "invoices", sort, [("status", "eq", "paid"), ("total", "gt", Decimal("5"))]
    )
    assert base != cursor_fingerprint(
        "orders", sort, [("status", "eq", "open"), ("total", "gt", Decimal("5"))]
    )
    assert base != cursor_fingerprint(
        "orders", sort[:1], [("status", "eq", "paid"), ("total", "gt", Decimal("5"))]
    )
    # Decimal("5") and 5 and "5" are different filters.
    assert cursor_fingerprint("o", sort, [("t", "eq", 5)]) != cursor_fingerprint(
        "o", sort, [("t", "eq", "5")]
    )


def test_issued_at_is_reported() -> None:
    codec = CursorCodec(clock=lambda: 1_700_000_000.5)
    decoded = codec.decode(codec.encode({"a": 1}))
    assert decoded.issued_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_the_codec_imports_no_sqlalchemy_or_pydantic() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qxdb import CursorCodec, decode_cursor, encode_cursor\n"
        "decode_cursor(encode_cursor({'a': 1}, codec=CursorCodec()), codec=CursorCodec())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'pydantic'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
