"""Opaque cursor tokens: type-exact values, optional HMAC signature, one error type.

Pure standard library (plus :mod:`qxdb.errors`), so ``qxdb cursor decode`` starts as fast
as ``qxdb --help``.

Two formats are read:

- **v1** (written by :func:`encode_cursor`): ``v1.<payload>[.<signature>]``. The payload is
  base64url JSON without padding: ``{"k": {field: value, ...}, "f": fingerprint,
  "d": "n"|"p", "t": issued_at}``, plus ``"b": 1`` when ``k`` holds only the boundary
  row's id because its sort values would not fit the token cap (see
  :meth:`CursorCodec.encode_position`). Strings, ints, booleans and None are plain JSON;
  everything else is tagged, ``["dt", "2024-02-29T23:59:59.123456+05:30"]``, so it comes
  back exactly (datetimes keep microseconds and offset, Decimals are exact strings, never
  floats). The signature is HMAC-SHA256 over ``v1.<payload>``.
- **v0**, the reference's unsigned ``base64url(json)``: decoded to its plain JSON values
  so old tokens stay readable; it carries no types, no fingerprint and no signature.

Every way a token can be bad raises :class:`~qxdb.errors.CursorError` with a ``reason``:
``too_large``, ``malformed``, ``wrong_version``, ``unsigned``, ``tampered``, ``expired``
(``wrong_sort`` comes from the keyset layer, which compares fingerprints).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from qxdb.core.env import ENV_PREVIOUS_SECRETS, parse_secret_list
from qxdb.errors import ConfigurationError, CursorError, ValidationError

__all__ = [
    "MAX_TOKEN_LENGTH",
    "CursorCodec",
    "CursorDirection",
    "CursorSpec",
    "DecodedCursor",
    "cursor_fingerprint",
    "cursor_spec_from_json",
    "decode_cursor",
    "encode_cursor",
    "tag_value",
    "untag_value",
]

CursorDirection = Literal["next", "previous"]

MAX_TOKEN_LENGTH = 4096
# Servers' clocks disagree a little; a token "from the future" beyond this is not ours.
_CLOCK_SKEW_SECONDS = 300
_VERSION = "v1"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_VERSION_PREFIX = re.compile(r"v[0-9]{1,4}")
_DIRECTIONS: dict[str, CursorDirection] = {"n": "next", "p": "previous"}
_DIRECTION_CODES: dict[CursorDirection, str] = {"next": "n", "previous": "p"}

ENV_SECRET = "QX_DB__CURSOR_SECRET"
ENV_MAX_AGE = "QX_DB__CURSOR_MAX_AGE_SECONDS"


# -- typed values ---------------------------------------------------------------------------

_TYPE_NAMES: dict[str, str] = {
    "dt": "datetime",
    "d": "date",
    "u": "uuid",
    "n": "decimal",
    "f": "float",
}


def tag_value(value: Any) -> Any:
    """A JSON-ready form of ``value`` that :func:`untag_value` restores exactly.

    A value no cursor can hold raises :class:`~qxdb.errors.CursorError` (``malformed``).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, UUID):
        return ["u", str(value)]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CursorError("malformed", f"a cursor cannot hold the non-finite float {value!r}")
        return ["f", repr(value)]
    raise CursorError(
        "malformed",
        f"a cursor cannot hold a {type(value).__name__}; supported: str, int, bool, None, "
        "datetime, date, UUID, Decimal, float",
    )


def untag_value(raw: Any) -> Any:
    """The value :func:`tag_value` encoded; ``ValueError`` for anything else."""
    if raw is None or isinstance(raw, bool | str | int):
        return raw
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(p, str) for p in raw)):
        raise ValueError(f"not a cursor value: {_short(raw)}")
    tag, text = raw
    if tag == "dt":
        return datetime.fromisoformat(text)
    if tag == "d":
        if len(text) != 10:
            raise ValueError(f"not a date: {_short(text)}")
        return date.fromisoformat(text)
    if tag == "u":
        if len(text) != 36:
            raise ValueError(f"not a UUID: {_short(text)}")
        return UUID(text)
    if tag == "n":
        # Decimal() accepts surrounding whitespace and underscores; a real encoding has neither.
        if text != text.strip() or "_" in text:
            raise ValueError(f"not a decimal: {_short(text)}")
        return Decimal(text)
    if tag == "f":
        number = float(text)
        if not math.isfinite(number) or "_" in text:
            raise ValueError(f"not a finite float: {_short(text)}")
        return number
    raise ValueError(f"unknown cursor value type {_short(tag)}")


def type_name(value: Any) -> str:
    """The cursor type name of a decoded value (for display)."""
    if value is None:
        return "null"
    for kind, name in (
        (bool, "bool"),
        (int, "int"),
        (str, "str"),
        (datetime, "datetime"),
        (date, "date"),
        (UUID, "uuid"),
        (Decimal, "decimal"),
        (float, "float"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- fingerprints ---------------------------------------------------------------------------


def cursor_fingerprint(
    resource: str,
    sort: Sequence[tuple[str, str, str]],
    filters: Sequence[tuple[str, str, Any]] = (),
) -> str:
    """A short digest binding a cursor to its resource, full sort spec and filters.

    ``sort`` holds ``(field, direction, nulls)`` of the complete ORDER BY; ``filters``
    ``(field, op, value)``. Filters are ANDed, so their order does not matter.
    """
    canonical_filters = sorted(
        json.dumps([f, op, _fingerprint_value(v)], sort_keys=True, separators=(",", ":"))
        for f, op, v in filters
    )
    document = {"r": resource, "s": [list(key) for key in sort], "f": canonical_filters}
    digest = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    ).digest()
    return _b64encode(digest[:16])


def _fingerprint_value(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        items = [_fingerprint_value(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    try:
        return tag_value(value)
    except (TypeError, ValueError):
        return ["?", type(value).__name__, repr(value)]


# -- the codec ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedCursor:
    """What a token says, and how far it can be trusted."""

    values: dict[str, Any]
    version: int
    signed: bool
    verified: bool
    fingerprint: str | None = None
    direction: CursorDirection = "next"
    issued_at: datetime | None = None
    # 0: the current secret verified it; n: the n-th previous secret (rotation).
    key_index: int | None = None
    # The values name the boundary row by its tiebreaker only (its sort values were too
    # long for a token); the keyset layer looks them up.
    by_row: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "signed": self.signed,
            "verified": self.verified,
            "key": _key_label(self.key_index),
            "fingerprint": self.fingerprint,
            "direction": self.direction if self.version else None,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            **({"by_row": True} if self.by_row else {}),
            "values": [
                {"field": name, "type": type_name(value), "value": _display(value)}
                for name, value in self.values.items()
            ],
        }


def _key_label(index: int | None) -> str | None:
    if index is None:
        return None
    return "current" if index == 0 else f"previous #{index}"


def _display(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value) if not isinstance(value, float) else repr(value)


def _as_key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ConfigurationError("a cursor secret must not be empty")
    return key


@dataclass(frozen=True, slots=True)
class CursorCodec:
    """Encodes and decodes cursor tokens under one signing policy.

    With a ``secret``, tokens are signed, and unsigned tokens are refused (reason
    ``unsigned``) unless ``require_signature=False`` (a migration window). Tokens signed
    with one of ``previous_secrets`` still verify, so keys rotate without breaking open
    pages. ``max_age_seconds`` refuses old tokens (reason ``expired``).
    """

    secret: str | bytes | None = field(default=None, repr=False)
    previous_secrets: Sequence[str | bytes] = field(default=(), repr=False)
    max_age_seconds: int | None = None
    require_signature: bool | None = None
    max_token_length: int = MAX_TOKEN_LENGTH
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        for secret in (self.secret, *self.previous_secrets):
            if secret is not None:
                _as_key(secret)
        if self.max_age_seconds is not None and self.max_age_seconds <= 0:
            raise ConfigurationError("max_age_seconds must be positive")
        if self.require_signature and self.secret is None:
            raise ConfigurationError("require_signature needs a secret")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CursorCodec:
        """The codec configured by ``QX_DB__CURSOR_SECRET``, ``…_PREVIOUS_SECRETS`` (JSON list
        or comma-separated) and ``…_MAX_AGE_SECONDS``; unsigned when no secret is set."""
        env = os.environ if environ is None else environ
        secret = env.get(ENV_SECRET) or None
        try:
            previous = parse_secret_list(env.get(ENV_PREVIOUS_SECRETS, ""))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        max_age_text = (env.get(ENV_MAX_AGE) or "").strip()
        try:
            max_age = int(max_age_text) if max_age_text else None
        except ValueError:
            raise ConfigurationError(
                f"{ENV_MAX_AGE} must be an integer, not {max_age_text!r}"
            ) from None
        return cls(secret=secret, previous_secrets=previous, max_age_seconds=max_age)

    @classmethod
    def from_settings(cls, settings: Any) -> CursorCodec:
        """The codec a :class:`~qxdb.settings.DatabaseSettings` describes."""
        secret = settings.cursor_secret
        return cls(
            secret=secret.get_secret_value() if secret is not None else None,
            previous_secrets=tuple(s.get_secret_value() for s in settings.cursor_previous_secrets),
            max_age_seconds=settings.cursor_max_age_seconds,
        )

    @property
    def signs(self) -> bool:
        return self.secret is not None

    @property
    def _requires_signature(self) -> bool:
        return self.secret is not None if self.require_signature is None else self.require_signature

    def encode(
        self,
        values: Mapping[str, Any],
        *,
        fingerprint: str | None = None,
        direction: CursorDirection = "next",
        issued_at: float | None = None,
    ) -> str:
        """A v1 token for ``values`` (field -> value), signed when the codec has a secret."""
        body = self._build(values, fingerprint, direction, issued_at, by_row=False)
        if len(body) > self.max_token_length:
            raise CursorError(
                "too_large",
                f"the cursor would be {len(body)} characters, over the cap of "
                f"{self.max_token_length}: sort on fewer or shorter columns",
            )
        return body

    def encode_position(
        self,
        values: Mapping[str, Any],
        *,
        row_key: str,
        fingerprint: str | None = None,
        direction: CursorDirection = "next",
        issued_at: float | None = None,
    ) -> str:
        """A token for a keyset position: the sort values when they fit the cap, otherwise
        only ``values[row_key]`` (the unique tiebreaker) marked "look the row up".

        So a sort key of any length pages, while :meth:`decode` still refuses any token
        over the cap.
        """
        body = self._build(values, fingerprint, direction, issued_at, by_row=False)
        if len(body) <= self.max_token_length:
            return body
        if row_key not in values:
            raise CursorError("malformed", f"the position has no {row_key!r} to fall back on")
        body = self._build(
            {row_key: values[row_key]}, fingerprint, direction, issued_at, by_row=True
        )
        if len(body) > self.max_token_length:
            raise CursorError(
                "too_large",
                f"the cursor would be {len(body)} characters, over the cap of "
                f"{self.max_token_length}, even naming only the row",
            )
        return body

    def _build(
        self,
        values: Mapping[str, Any],
        fingerprint: str | None,
        direction: CursorDirection,
        issued_at: float | None,
        *,
        by_row: bool,
    ) -> str:
        if direction not in _DIRECTION_CODES:
            raise CursorError(
                "malformed", f"direction must be 'next' or 'previous', not {_short(direction)}"
            )
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise CursorError("malformed", "a cursor fingerprint must be a string")
        issued = self.clock() if issued_at is None else issued_at
        if (
            isinstance(issued, bool)
            or not isinstance(issued, int | float)
            or not math.isfinite(issued)
        ):
            raise CursorError(
                "malformed", f"a cursor issue time must be a finite number, not {_short(issued)}"
            )
        payload: dict[str, Any] = {"k": {str(k): tag_value(v) for k, v in values.items()}}
        if by_row:
            payload["b"] = 1
        if fingerprint is not None:
            payload["f"] = fingerprint
        payload["d"] = _DIRECTION_CODES[direction]
        payload["t"] = int(issued)
        body = f"{_VERSION}.{_b64encode(_encode_text(payload))}"
        if self.secret is not None:
            body += "." + _b64encode(_sign(_as_key(self.secret), body))
        return body

    def decode(self, token: Any) -> DecodedCursor:
        """Check and decode a token; :class:`CursorError` for every way it can be bad."""
        try:
            return self._decode(token)
        except CursorError:
            raise
        except Exception as exc:  # every other failure of a hostile token is "malformed"
            raise CursorError("malformed", f"malformed cursor: {_reason_text(exc)}") from None

    def _decode(self, token: Any) -> DecodedCursor:
        if isinstance(token, bytes):
            token = token.decode("ascii")
        if not isinstance(token, str):
            raise CursorError("malformed", f"a cursor is a string, not {type(token).__name__}")
        if len(token) > self.max_token_length:
            raise CursorError(
                "too_large",
                f"cursor is {len(token)} characters, over the cap of {self.max_token_length}",
            )
        token = token.strip()
        if not token:
            raise CursorError("malformed", "the cursor is empty")
        parts = token.split(".")
        if len(parts) == 1:
            return self._decode_v0(token)
        version = parts[0]
        if version != _VERSION:
            if _VERSION_PREFIX.fullmatch(version):
                raise CursorError(
                    "wrong_version",
                    f"cursor format {version} is not supported (this qxdb reads {_VERSION})",
                )
            raise CursorError("malformed", "malformed cursor: unknown format")
        if len(parts) > 3:
            raise CursorError("malformed", "malformed cursor: too many parts")
        signature = _b64decode(parts[2]) if len(parts) == 3 else None
        payload_bytes = _b64decode(parts[1])
        key_index = self._verify(f"{parts[0]}.{parts[1]}", signature)
        payload = _loads(payload_bytes)
        decoded = self._from_payload(payload, signed=signature is not None, key_index=key_index)
        self._check_age(decoded)
        return decoded

    def _decode_v0(self, token: str) -> DecodedCursor:
        document = _loads(_b64decode(token))
        if not isinstance(document, dict):
            raise CursorError("malformed", "malformed cursor: not a JSON object")
        if self._requires_signature:
            raise CursorError("unsigned", "cursor is not signed, and a signature is required")
        decoded = DecodedCursor(values=document, version=0, signed=False, verified=False)
        self._check_age(decoded)
        return decoded

    def _verify(self, body: str, signature: bytes | None) -> int | None:
        if signature is None:
            if self._requires_signature:
                raise CursorError("unsigned", "cursor is not signed, and a signature is required")
            return None
        if self.secret is None:
            return None  # nothing to verify against; reported as signed but unverified
        keys = [self.secret, *self.previous_secrets]
        matched: int | None = None
        for index, secret in enumerate(keys):
            # Try every key, so timing does not reveal which one matched.
            if hmac.compare_digest(_sign(_as_key(secret), body), signature) and matched is None:
                matched = index
        if matched is None:
            raise CursorError("tampered", "cursor signature does not verify")
        return matched

    def _from_payload(self, payload: Any, *, signed: bool, key_index: int | None) -> DecodedCursor:
        if not isinstance(payload, dict) or not isinstance(payload.get("k"), dict):
            raise CursorError("malformed", "malformed cursor: wrong shape")
        if set(payload) - {"k", "f", "d", "t", "b"}:
            raise CursorError("malformed", "malformed cursor: unexpected fields")
        by_row = payload.get("b", 0)
        if by_row not in (0, 1) or isinstance(by_row, bool):
            raise CursorError("malformed", "malformed cursor: bad row marker")
        fingerprint = payload.get("f")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise CursorError("malformed", "malformed cursor: bad fingerprint")
        direction_code = payload.get("d", "n")
        direction = _DIRECTIONS.get(direction_code) if isinstance(direction_code, str) else None
        if direction is None:
            raise CursorError("malformed", "malformed cursor: bad direction")
        issued = payload.get("t")
        issued_at: datetime | None = None
        if issued is not None:
            if isinstance(issued, bool) or not isinstance(issued, int):
                raise CursorError("malformed", "malformed cursor: bad issue time")
            issued_at = datetime.fromtimestamp(issued, UTC)
        values = {name: untag_value(raw) for name, raw in payload["k"].items()}
        return DecodedCursor(
            values=values,
            version=1,
            signed=signed,
            verified=key_index is not None,
            fingerprint=fingerprint,
            direction=direction,
            issued_at=issued_at,
            key_index=key_index,
            by_row=by_row == 1,
        )

    def _check_age(self, decoded: DecodedCursor) -> None:
        now = self.clock()
        if decoded.issued_at is not None:
            issued = decoded.issued_at.timestamp()
            if issued > now + _CLOCK_SKEW_SECONDS:
                raise CursorError("malformed", "malformed cursor: issued in the future")
        if self.max_age_seconds is None:
            return
        if decoded.issued_at is None:
            raise CursorError("expired", "cursor carries no issue time, and a maximum age is set")
        age = now - decoded.issued_at.timestamp()
        if age > self.max_age_seconds:
            raise CursorError(
                "expired",
                f"cursor expired: issued {int(age)} s ago, the maximum age is "
                f"{self.max_age_seconds} s",
            )


def _reason_text(exc: Exception) -> str:
    if isinstance(exc, UnicodeError):
        return "not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc).split("\n")[0]
    return text[:120] if text else type(exc).__name__


# One encoder for every token: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(document: Any) -> bytes:
    return _ENCODER.encode(document).encode()


def _encode_text(payload: Any) -> bytes:
    """The payload as UTF-8 JSON; text that is not valid Unicode (a lone surrogate, as
    from undecodable bytes) cannot be carried, so it is refused rather than mangled."""
    try:
        return _dumps(payload)
    except UnicodeEncodeError:
        raise CursorError(
            "malformed", "a cursor cannot hold text with a lone surrogate (not valid Unicode)"
        ) from None


def _loads(raw: bytes) -> Any:
    """A token's JSON, refusing what :func:`_encode_text` refuses: a ``\\u`` escape can spell
    a lone surrogate that valid UTF-8 bytes cannot, and such text breaks whoever prints or
    stores it. Our encoder writes ``\\u`` only for control characters, so the re-check
    runs only when an escape is present."""
    document = json.loads(raw.decode("utf-8"))
    if b"\\u" in raw:
        try:
            _dumps(document)
        except UnicodeEncodeError:
            raise CursorError(
                "malformed", "malformed cursor: text with a lone surrogate (not valid Unicode)"
            ) from None
    return document


def _sign(key: bytes, body: str) -> bytes:
    # hmac.digest: the one-shot C implementation, the same MAC as hmac.new(...).digest().
    return hmac.digest(key, body.encode("ascii"), "sha256")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise CursorError("malformed", "malformed cursor: not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CursorError("malformed", "malformed cursor: not base64url") from None
    # Unused trailing bits make several spellings decode alike; accept only the canonical one,
    # so a flipped bit can never go unnoticed.
    if _b64encode(raw) != text:
        raise CursorError("malformed", "malformed cursor: not canonical base64url")
    return raw


# -- typed JSON documents (what ``qxdb cursor decode --json`` prints, ``encode`` reads) ------

_TAGS_BY_NAME = {name: tag for tag, name in _TYPE_NAMES.items()}


@dataclass(frozen=True, slots=True)
class CursorSpec:
    """What a token is made from: values, and the fingerprint and direction it carries."""

    values: dict[str, Any]
    fingerprint: str | None = None
    direction: CursorDirection = "next"


def cursor_spec_from_json(document: Any) -> CursorSpec:
    """Read a cursor description from JSON data; :class:`~qxdb.errors.ValidationError` if bad.

    Either the document ``qxdb cursor decode --json`` prints (``values`` as a list of
    ``{"field", "type", "value"}``), or a flat object of field -> value, where a value is a
    JSON string, integer, boolean or null, or ``{"type": "datetime", "value": "..."}``
    (types: str, int, bool, null, datetime, date, uuid, decimal, float).
    """
    if not isinstance(document, dict):
        raise ValidationError("cursor JSON must be an object")
    fingerprint: Any = None
    direction: Any = "next"
    if "values" in document:
        fingerprint = document.get("fingerprint")
        direction = document.get("direction") or "next"
        raw_values = document["values"]
        if isinstance(raw_values, list):
            pairs = []
            for item in raw_values:
                if not isinstance(item, dict) or not isinstance(item.get("field"), str):
                    raise ValidationError('each of "values" needs a "field" name')
                pairs.append((item["field"], item))
        elif isinstance(raw_values, dict):
            pairs = list(raw_values.items())
        else:
            raise ValidationError('"values" must be a list or an object')
    else:
        pairs = list(document.items())
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValidationError('"fingerprint" must be a string')
    if direction not in _DIRECTION_CODES:
        raise ValidationError('"direction" must be "next" or "previous"')
    values = {name: _typed_value(name, raw) for name, raw in pairs}
    return CursorSpec(values=values, fingerprint=fingerprint, direction=direction)


def _typed_value(name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        if isinstance(raw, float):
            raise ValidationError(
                f'{name}: write a float as {{"type": "float", "value": "{raw!r}"}} '
                "(or a decimal), so its precision is explicit"
            )
        if raw is None or isinstance(raw, bool | int | str):
            return raw
        raise ValidationError(f"{name}: a value must be a scalar or a typed object")
    kind, value = raw.get("type"), raw.get("value")
    if "type" not in raw:
        raise ValidationError(
            f'{name}: an object value needs "type" and "value", e.g. {{"type": "uuid", "value": "…"}}'
        )
    try:
        if kind in ("str", "int", "bool", "null"):
            expected = {"str": str, "int": int, "bool": bool, "null": type(None)}[kind]
            if kind == "int" and isinstance(value, str):
                value = int(value)
            if not isinstance(value, expected) or (kind == "int" and isinstance(value, bool)):
                raise ValueError(f"not a {kind}")
            return value
        if kind in _TAGS_BY_NAME:
            text = value if isinstance(value, str) else repr(value)
            if kind in ("decimal", "float") and isinstance(value, int | float):
                text = str(value)
            return untag_value([_TAGS_BY_NAME[kind], text])
    except (ValueError, ArithmeticError) as exc:
        raise ValidationError(f"{name}: {value!r} is not a valid {kind}: {exc}") from None
    raise ValidationError(
        f"{name}: unknown type {kind!r}; expected one of str, int, bool, null, "
        + ", ".join(_TAGS_BY_NAME)
    )


# -- module-level shortcuts -----------------------------------------------------------------


def encode_cursor(
    values: Mapping[str, Any],
    *,
    codec: CursorCodec | None = None,
    fingerprint: str | None = None,
    direction: CursorDirection = "next",
) -> str:
    """Encode ``values`` as a v1 token (signed when ``QX_DB__CURSOR_SECRET`` or the codec says)."""
    return (codec or CursorCodec.from_env()).encode(
        values, fingerprint=fingerprint, direction=direction
    )


def decode_cursor(token: str, *, codec: CursorCodec | None = None) -> dict[str, Any]:
    """The values of a v1 or reference (v0) token; :class:`CursorError` when it is bad."""
    return (codec or CursorCodec.from_env()).decode(token).values
