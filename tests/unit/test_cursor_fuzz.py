"""10,000 hostile tokens: each gives a CursorError with the right reason, and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from qxdb import CursorCodec, CursorError

NOW = 1_800_000_000.0
SIGNING = CursorCodec(secret="current", previous_secrets=["previous"], clock=lambda: NOW)
PLAIN = CursorCodec(clock=lambda: NOW)
STRICT_AGE = CursorCodec(secret="current", max_age_seconds=60, clock=lambda: NOW)
B64 = string.ascii_letters + string.digits + "-_"

Case = tuple[CursorCodec, Any, set[str]]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed_body(payload: Any, key: str) -> str:
    body = "v1." + _b64(json.dumps(payload).encode())
    return body + "." + _b64(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest())


def _valid(rng: random.Random) -> str:
    values = {
        "created_at": datetime(2024, 1, 1, tzinfo=UTC).replace(microsecond=rng.randrange(10**6)),
        "price": Decimal(rng.randrange(10**6)) / 100,
        "id": UUID(int=rng.getrandbits(128)),
        "n": rng.choice([None, rng.randrange(-(10**9), 10**9), "text", True]),
    }
    return SIGNING.encode(values, fingerprint=_b64(rng.randbytes(16)))


def truncated(rng: random.Random) -> Case:
    token = _valid(rng)
    cut = token[: rng.randrange(0, len(token))]
    parts = cut.split(".")
    expected = {1: {"malformed"}, 2: {"malformed", "unsigned"}, 3: {"malformed", "tampered"}}
    return SIGNING, cut, expected[len(parts)]


def bit_flipped(rng: random.Random) -> Case:
    token = bytearray(_valid(rng).encode())
    where = rng.randrange(len(token))
    token[where] ^= 1 << rng.randrange(7)
    mutated = token.decode("ascii")
    if where >= 3 and mutated.count(".") == 2:
        # A flip inside the payload or signature: caught by the signature or the base64 check.
        return SIGNING, mutated, {"tampered", "malformed"}
    return SIGNING, mutated, {"tampered", "malformed", "wrong_version", "unsigned"}


def resigned(rng: random.Random) -> Case:
    token = _valid(rng)
    body = token.rsplit(".", 1)[0]
    key = "".join(rng.choices(string.printable, k=rng.randrange(1, 40)))
    forged = body + "." + _b64(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest())
    return SIGNING, forged, {"tampered"}


def oversized(rng: random.Random) -> Case:
    length = rng.randrange(4097, 20_000)
    return rng.choice([SIGNING, PLAIN]), "v1." + "".join(rng.choices(B64, k=length)), {"too_large"}


WRONG_SHAPES: list[Any] = [
    [], 1, "x", None, True, 1.5, {}, {"k": []}, {"k": None}, {"k": "x"},
    {"k": {"a": ["zz", "1"]}}, {"k": {"a": ["dt", "not a date"]}}, {"k": {"a": ["d", "2024-13-01"]}},
    {"k": {"a": ["d", "2024-01-01T00:00"]}}, {"k": {"a": ["u", "not-a-uuid"]}},
    {"k": {"a": ["u", "{12345678-1234-5678-1234-567812345678}"]}}, {"k": {"a": ["n", "1_0"]}},
    {"k": {"a": ["n", " 1"]}}, {"k": {"a": ["n", "abc"]}}, {"k": {"a": ["f", "nan"]}},
    {"k": {"a": ["f", "inf"]}}, {"k": {"a": 1.5}}, {"k": {"a": {"x": 1}}}, {"k": {"a": ["dt"]}},
    {"k": {"a": ["dt", 1]}}, {"k": {"a": [1, 2]}}, {"k": {}, "t": "x"}, {"k": {}, "t": 10**30},
    {"k": {}, "t": True}, {"k": {}, "t": 1.5}, {"k": {}, "d": "q"}, {"k": {}, "d": 1},
    {"k": {}, "f": 1}, {"k": {}, "extra": 1}, {"k": {}, "t": int(NOW) + 3600},
    {"k": {"a": [[[[[[[[[[1]]]]]]]]]]}},
]  # fmt: skip


def wrong_shape(rng: random.Random) -> Case:
    payload = rng.choice(WRONG_SHAPES)
    if rng.random() < 0.5:
        return SIGNING, _signed_body(payload, rng.choice(["current", "previous"])), {"malformed"}
    return PLAIN, "v1." + _b64(json.dumps(payload).encode()), {"malformed"}


def reference_shaped(rng: random.Random) -> Case:
    # The unversioned format, holding JSON that is not an object, or bytes that are not JSON.
    raw = rng.choice(
        [
            json.dumps(rng.choice([[], 1, "x", None, [1, 2]])).encode(),
            rng.randbytes(rng.randrange(1, 60)),
        ]
    )
    return rng.choice([SIGNING, PLAIN]), _b64(raw), {"malformed"}


def garbage(rng: random.Random) -> Case:
    alphabet = rng.choice([string.printable, B64 + ".", "v1.=/+ \t\n\x00é€😀"])
    text = "".join(rng.choices(alphabet, k=rng.randrange(0, 300)))
    return rng.choice([SIGNING, PLAIN]), text, {"malformed", "wrong_version", "unsigned"}


def not_a_string(rng: random.Random) -> Case:
    value = rng.choice([None, 1, 1.5, [], {}, b"\xff\xfe", object()])
    return PLAIN, value, {"malformed"}


def expired(rng: random.Random) -> Case:
    old = CursorCodec(secret="current", clock=lambda: NOW - rng.randrange(61, 10**7))
    return STRICT_AGE, old.encode({"id": rng.randrange(100)}), {"expired"}


def unknown_version(rng: random.Random) -> Case:
    return PLAIN, f"v{rng.randrange(2, 9999)}." + "".join(rng.choices(B64, k=20)), {"wrong_version"}


MUTATORS: list[Callable[[random.Random], Case]] = [
    truncated, bit_flipped, resigned, oversized, wrong_shape,
    reference_shaped, garbage, not_a_string, expired, unknown_version,
]  # fmt: skip


def _error_of(codec: CursorCodec, token: Any) -> CursorError | None:
    """The CursorError a token raises; any other exception propagates and fails the test."""
    try:
        codec.decode(token)
    except CursorError as exc:
        return exc
    return None


def test_ten_thousand_hostile_tokens_raise_only_cursor_error_with_the_right_reason() -> None:
    rng = random.Random(20261127)
    seen: Counter[str] = Counter()
    for i in range(10_000):
        mutate = MUTATORS[i % len(MUTATORS)]
        codec, token, expected = mutate(rng)
        error = _error_of(codec, token)
        assert error is not None, f"{mutate.__name__} produced a token that decoded: {token!r}"
        assert error.reason in expected, (mutate.__name__, token, error.reason, error.message)
        assert isinstance(error, ValueError)
        assert "\n" not in error.message
        seen[error.reason] += 1
    # Every reason was exercised, so no category silently degenerated into another.
    for reason in ("malformed", "tampered", "expired", "wrong_version", "too_large", "unsigned"):
        assert seen[reason] > 0, (reason, seen)


def test_a_signed_token_survives_its_own_round_trip_many_times() -> None:
    rng = random.Random(7)
    for _ in range(500):
        token = _valid(rng)
        assert SIGNING.decode(token).verified
