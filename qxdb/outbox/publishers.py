"""Where the relay sends events: the ``Publisher`` protocol and NATS JetStream.

A publisher takes a whole batch and answers one outcome per message, in order. That shape
lets an implementation pipeline: :class:`NatsJetStreamPublisher` writes every message of
the batch to the socket before it waits for a single acknowledgement, then collects the
stream's acks on one shared reply subscription. A JetStream ack flagged ``duplicate``
(the ``Nats-Msg-Id`` was already stored within the stream's duplicate window) counts as
delivered: that is how a re-publish after a crash stays exactly-once in the stream.

nats-py is the ``qxdb[nats]`` extra; it is imported only when a NATS publisher connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qxdb.errors import BrokerUnavailableError, ConfigurationError
from qxdb.urls import redact_secrets

__all__ = [
    "NatsJetStreamPublisher",
    "OutboundMessage",
    "PublishOutcome",
    "Publisher",
    "default_stream_name",
    "subject_for",
    "validate_subject_prefix",
]

MSG_ID_HEADER = "Nats-Msg-Id"
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9_-]")
_PREFIX_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One outbox row, ready for the broker."""

    subject: str
    payload: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What the broker said about one message."""

    ok: bool
    duplicate: bool = False
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> PublishOutcome:
        return cls(ok=False, error=error)


DELIVERED = PublishOutcome(ok=True)
DELIVERED_DUPLICATE = PublishOutcome(ok=True, duplicate=True)


@runtime_checkable
class Publisher(Protocol):
    """Sends a batch and returns one outcome per message, in the batch's order.

    A failure of one message is an outcome, not an exception. Raise
    :class:`~qxdb.errors.BrokerUnavailableError` only when the broker cannot be reached
    at all: the relay then releases the batch without counting an attempt.
    """

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]: ...


def validate_subject_prefix(prefix: str) -> str:
    """A subject prefix is one or more plain tokens (``orders`` or ``acme.orders``)."""
    tokens = prefix.split(".")
    if not prefix or not all(_PREFIX_TOKEN.match(t) for t in tokens):
        raise ConfigurationError(
            f"invalid subject prefix {prefix!r}: use dot-separated tokens of letters, "
            "digits, '-' and '_' (no wildcards or spaces)"
        )
    return prefix


def subject_for(prefix: str, event_name: str) -> str:
    """``<prefix>.<event name tokens>``, each token reduced to safe NATS characters.

    ``orders.placed`` under ``acme`` becomes ``acme.orders.placed``; ``Order Placed!``
    becomes ``acme.Order_Placed_``; empty tokens become ``_``.
    """
    tokens = [_TOKEN_BAD.sub("_", t) or "_" for t in event_name.split(".")]
    return prefix + "." + ".".join(tokens)


def default_stream_name(prefix: str) -> str:
    """The stream the relay creates when none is named: ``QXDB_`` + the prefix."""
    return "QXDB_" + _TOKEN_BAD.sub("_", prefix).upper()


class _Batch:
    __slots__ = ("done", "outcomes", "remaining")

    def __init__(self, size: int) -> None:
        self.outcomes: list[PublishOutcome | None] = [None] * size
        self.remaining = size
        self.done = asyncio.get_running_loop().create_future()

    def settle(self, index: int, outcome: PublishOutcome) -> None:
        if self.outcomes[index] is not None:
            return
        self.outcomes[index] = outcome
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)


class NatsJetStreamPublisher:
    """Publishes to NATS JetStream with ``Nats-Msg-Id`` and pipelined acks.

    Use as an async context manager, or call :meth:`connect` and :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        ack_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        stream: str | None = None,
    ) -> None:
        self.url = url
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        # When set, each message carries Nats-Expected-Stream: a misrouted subject fails
        # loudly instead of landing in some other stream.
        self.stream = stream
        self._nc: Any = None
        self._reply_prefix = ""
        self._pending: dict[bytes, tuple[_Batch, int]] = {}
        self._serial = 0

    async def connect(self) -> None:
        try:
            import nats
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "the NATS publisher needs nats-py: pip install 'qxdb[nats]'"
            ) from exc
        try:
            self._nc = await nats.connect(
                servers=[self.url],
                connect_timeout=self.connect_timeout,
                # A bounded first connect, so an unreachable broker is reported at once…
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=_ignore_error,
            )
        except Exception as exc:
            raise BrokerUnavailableError(
                # The client's message may name the server URL, credentials included.
                f"cannot reach NATS at {_redact(self.url)}: "
                f"{redact_secrets(_reason(exc), self.url)}"
            ) from None
        # …and, once connected, reconnect for ever: a broker restart must not end a relay.
        self._nc.options["max_reconnect_attempts"] = -1
        self._nc.options["reconnect_time_wait"] = 0.5
        self._reply_prefix = self._nc.new_inbox()
        await self._nc.subscribe(self._reply_prefix + ".*", cb=self._on_ack)

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            with contextlib.suppress(Exception):
                await nc.drain()

    async def __aenter__(self) -> NatsJetStreamPublisher:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connection(self) -> Any:
        """The underlying nats-py client (for stream management and tests)."""
        if self._nc is None:
            raise BrokerUnavailableError("the NATS publisher is not connected")
        return self._nc

    async def ensure_stream(
        self, name: str, subject_prefix: str, *, duplicate_window: float
    ) -> None:
        """Create the stream over ``<prefix>.>`` unless a stream with that name exists."""
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        js = self.connection.jetstream()
        try:
            await js.stream_info(name)
            return
        except NotFoundError:
            pass
        except Exception as exc:
            raise BrokerUnavailableError(f"JetStream did not answer: {_reason(exc)}") from None
        try:
            await js.add_stream(
                StreamConfig(
                    name=name,
                    subjects=[f"{subject_prefix}.>"],
                    duplicate_window=duplicate_window,
                )
            )
        except Exception as exc:
            raise BrokerUnavailableError(
                f"could not create JetStream stream {name}: {_reason(exc)}"
            ) from None

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]:
        nc = self.connection
        if not messages:
            return []
        if not nc.is_connected:
            raise BrokerUnavailableError(f"not connected to NATS at {_redact(self.url)}")
        batch = _Batch(len(messages))
        self._serial += 1
        base = f"{self._reply_prefix}.{self._serial}_"
        tokens: list[bytes] = []
        try:
            for index, message in enumerate(messages):
                reply = f"{base}{index}"
                key = reply.encode()
                tokens.append(key)
                self._pending[key] = (batch, index)
                headers = {MSG_ID_HEADER: message.msg_id, **message.headers}
                if self.stream:
                    headers["Nats-Expected-Stream"] = self.stream
                try:
                    await nc.publish(message.subject, message.payload, reply=reply, headers=headers)
                except Exception as exc:
                    batch.settle(index, PublishOutcome.failed(_reason(exc)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(batch.done), self.ack_timeout)
        finally:
            for key in tokens:
                self._pending.pop(key, None)
        timeout = PublishOutcome.failed(f"no ack from JetStream within {self.ack_timeout:g} s")
        return [o if o is not None else timeout for o in batch.outcomes]

    async def _on_ack(self, msg: Any) -> None:
        entry = self._pending.pop(msg.subject.encode(), None)
        if entry is None:
            return
        batch, index = entry
        batch.settle(index, _outcome(msg))


def _outcome(msg: Any) -> PublishOutcome:
    headers = msg.headers
    if headers and headers.get("Status") == "503":
        return PublishOutcome.failed("no JetStream stream covers this subject")
    data: bytes = msg.data
    if b'"error"' not in data:
        return DELIVERED_DUPLICATE if b'"duplicate":true' in data else DELIVERED
    try:
        err = json.loads(data).get("error", {})
        return PublishOutcome.failed(f"JetStream error {err.get('code')}: {err.get('description')}")
    except ValueError:
        return PublishOutcome.failed("unreadable JetStream ack")


async def _ignore_error(_exc: Exception) -> None:
    # nats-py logs to its error callback on every reconnect attempt; the relay reports
    # broker trouble through failed publishes instead.
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _redact(url: str) -> str:
    # NATS token auth puts the token where other URLs put the user (nats://TOKEN@host),
    # so a user part without a password is hidden too, not only a password.
    def mask(match: re.Match[str]) -> str:
        user, colon, _ = match.group(1).partition(":")
        return f"//{user}:***@" if colon else "//***@"

    return re.sub(r"//([^@/]*)@", mask, url)
