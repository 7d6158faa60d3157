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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qxdb.errors import BrokerUnavailableError, ConfigurationError
from qxdb.urls import check_nats_url, redact_secrets, split_nats_servers

__all__ = [
    "NatsJetStreamPublisher",
    "OutboundMessage",
    "PublishOutcome",
    "Publisher",
    "StreamLimits",
    "ack_outcome",
    "default_stream_name",
    "message_size",
    "subject_for",
    "validate_subject_prefix",
]

MSG_ID_HEADER = "Nats-Msg-Id"
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9_-]")
_PREFIX_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One outbox row, ready for the broker.

    ``not_after`` is the relay's lease on the row, on the ``time.monotonic()`` clock: a
    publisher that honours it does not write the message to the socket once that moment
    has passed (another relay may own the row by then).
    """

    subject: str
    payload: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    not_after: float | None = None


# Why a message was not delivered, which decides what the relay does with its row.
EVENT_FAULT = "event"  # this event failed: one more attempt, backoff, dead at the limit
REJECTED = "rejected"  # this event can never be delivered (too large): dead at once
BROKER_FAULT = "broker"  # the broker, not the event: released, no attempt counted
LEASE_EXPIRED = "lease"  # not sent, the lease ran out first: the row is no longer ours


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What the broker said about one message (``cause`` only matters when not ``ok``)."""

    ok: bool
    duplicate: bool = False
    error: str | None = None
    cause: str = EVENT_FAULT

    @classmethod
    def failed(cls, error: str) -> PublishOutcome:
        """This event failed; it is tried again after a backoff."""
        return cls(ok=False, error=error)

    @classmethod
    def rejected(cls, error: str) -> PublishOutcome:
        """This event can never be delivered as it is; it goes dead at once."""
        return cls(ok=False, error=error, cause=REJECTED)

    @classmethod
    def unavailable(cls, error: str) -> PublishOutcome:
        """The broker failed, not the event: no attempt is charged to it."""
        return cls(ok=False, error=error, cause=BROKER_FAULT)


DELIVERED = PublishOutcome(ok=True)
DELIVERED_DUPLICATE = PublishOutcome(ok=True, duplicate=True)
EXPIRED = PublishOutcome(ok=False, error="lease ran out before publishing", cause=LEASE_EXPIRED)


@runtime_checkable
class Publisher(Protocol):
    """Sends a batch and returns one outcome per message, in the batch's order.

    A failure of one message is an outcome, not an exception: ``failed`` (the event's
    own fault), ``rejected`` (never deliverable), ``unavailable`` (the broker's fault).
    Raise :class:`~qxdb.errors.BrokerUnavailableError` only when the broker cannot be
    reached at all: the relay then releases the batch without counting an attempt.

    A publisher may also offer ``async def ready() -> bool``: the relay calls it during
    an outage to learn, without claiming rows, whether the broker is back.
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
    __slots__ = ("acked", "done", "outcomes", "remaining")

    def __init__(self, size: int) -> None:
        self.outcomes: list[PublishOutcome | None] = [None] * size
        self.remaining = size
        self.acked = 0
        self.done = asyncio.get_running_loop().create_future()

    def settle(self, index: int, outcome: PublishOutcome) -> None:
        if self.outcomes[index] is not None:
            return
        self.outcomes[index] = outcome
        self.acked += outcome.ok
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)

    def abandon(self, outcome: PublishOutcome) -> None:
        """Settle every message still waiting (the connection went away under them)."""
        for index, found in enumerate(self.outcomes):
            if found is None:
                self.settle(index, outcome)


_HEADER_LINE = len(b"NATS/1.0\r\n")


def message_size(subject: str, payload: bytes, headers: Mapping[str, str]) -> int:
    """Bytes of one message as the server weighs it: header block + payload, plus the
    subject (counted too, so a message that passes here passes every server check)."""
    header = _HEADER_LINE + 2  # "NATS/1.0\r\n" ... "\r\n"
    for key, value in headers.items():
        header += len(key.encode()) + 2 + len(value.encode()) + 2  # "key: value\r\n"
    return len(subject.encode()) + header + len(payload)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What the relay must respect of an existing stream."""

    name: str
    duplicate_window: float
    max_msg_size: int | None


class NatsJetStreamPublisher:
    """Publishes to NATS JetStream with ``Nats-Msg-Id`` and pipelined acks.

    Use as an async context manager, or call :meth:`connect` and :meth:`close`.

    Before a message is written to the socket its full size (headers + payload +
    subject) is checked against the server's ``max_payload`` (from its INFO) and the
    stream's ``max_msg_size``: an oversized message would make the server close the
    connection, taking the innocent messages of the batch with it; it is ``rejected``
    instead. A client the server closed for good is replaced by a fresh connection.
    """

    def __init__(
        self,
        url: str,
        *,
        ack_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        stream: str | None = None,
    ) -> None:
        check_nats_url(url)  # a URL nats-py cannot use is a ValidationError, before connecting
        self.url = url
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        # When set, each message carries Nats-Expected-Stream: a misrouted subject fails
        # loudly instead of landing in some other stream.
        self.stream = stream
        self.max_msg_size: int | None = None
        self._nc: Any = None
        self._reply_prefix = ""
        self._pending: dict[bytes, tuple[_Batch, int]] = {}
        self._batches: set[_Batch] = set()
        self._serial = 0

    def _servers(self) -> list[str]:
        return split_nats_servers(self.url)

    async def connect(self) -> None:
        try:
            import nats
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "the NATS publisher needs nats-py: pip install 'qxdb[nats]'"
            ) from exc
        try:
            nc = await nats.connect(
                servers=self._servers(),
                connect_timeout=self.connect_timeout,
                # A bounded first connect, so an unreachable broker is reported at once…
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=_ignore_error,
                disconnected_cb=self._on_disconnect,
            )
        except Exception as exc:
            raise BrokerUnavailableError(
                # The client's message may name the server URL, credentials included.
                f"cannot reach NATS at {_redact(self.url)}: "
                f"{redact_secrets(_reason(exc), self.url)}"
            ) from None
        # …and, once connected, reconnect for ever: a broker restart must not end a relay.
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 0.5
        self._nc = nc
        self._reply_prefix = nc.new_inbox()
        await nc.subscribe(self._reply_prefix + ".*", cb=self._on_ack)

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

    async def _on_disconnect(self) -> None:
        # Acks of messages already written may never come: settle them now as the
        # broker's fault (not the events'), instead of charging them a timeout later.
        lost = PublishOutcome.unavailable(f"connection to NATS at {_redact(self.url)} lost")
        for batch in list(self._batches):
            batch.abandon(lost)

    async def _usable(self) -> Any:
        """The client, replaced by a fresh one if the server closed it for good."""
        nc = self.connection
        if nc.is_closed:
            # A closed nats-py client never comes back; a new connection might.
            self._nc = None
            await self.connect()
            nc = self._nc
        return nc

    async def ready(self) -> bool:
        """True when the broker can take messages now (a closed client is replaced)."""
        try:
            nc = await self._usable()
        except BrokerUnavailableError:
            return False
        return bool(nc.is_connected)

    async def stream_limits(self, name: str) -> StreamLimits | None:
        """The duplicate window and message size limit of stream ``name``; None if it
        does not exist. Remembers the size limit for the size check of every message."""
        from nats.js.errors import NotFoundError

        js = self.connection.jetstream()
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            return None
        except Exception as exc:
            raise BrokerUnavailableError(f"JetStream did not answer: {_reason(exc)}") from None
        config = info.config
        size = config.max_msg_size
        self.max_msg_size = int(size) if size is not None and size > 0 else None
        return StreamLimits(name, float(config.duplicate_window or 0.0), self.max_msg_size)

    async def ensure_stream(
        self, name: str, subject_prefix: str, *, duplicate_window: float
    ) -> StreamLimits:
        """Create the stream over ``<prefix>.>`` unless a stream with that name exists;
        either way, return its limits (an existing stream is used as it is)."""
        from nats.js.api import StreamConfig

        found = await self.stream_limits(name)
        if found is not None:
            return found
        js = self.connection.jetstream()
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
        return StreamLimits(name, duplicate_window, None)

    def _too_large(self, size: int, nc: Any) -> str | None:
        server = int(nc.max_payload)
        if size > server:
            return (
                f"message of {size:,} bytes (headers + payload + subject) exceeds the NATS "
                f"server's max_payload of {server:,} bytes: it can never be published"
            )
        if self.max_msg_size is not None and size > self.max_msg_size:
            return (
                f"message of {size:,} bytes (headers + payload + subject) exceeds the "
                f"stream's max_msg_size of {self.max_msg_size:,} bytes: it can never be stored"
            )
        return None

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> list[PublishOutcome]:
        if not messages:
            return []
        nc = await self._usable()
        if not nc.is_connected:
            raise BrokerUnavailableError(f"not connected to NATS at {_redact(self.url)}")
        batch = _Batch(len(messages))
        self._batches.add(batch)
        self._serial += 1
        base = f"{self._reply_prefix}.{self._serial}_"
        tokens: list[bytes] = []
        clock = time.monotonic
        try:
            for index, message in enumerate(messages):
                headers = {MSG_ID_HEADER: message.msg_id, **message.headers}
                if self.stream:
                    headers["Nats-Expected-Stream"] = self.stream
                oversized = self._too_large(
                    message_size(message.subject, message.payload, headers), nc
                )
                if oversized is not None:
                    batch.settle(index, PublishOutcome.rejected(oversized))
                    continue
                if message.not_after is not None and clock() >= message.not_after:
                    # The fence: past its lease the row may be another relay's; sent now,
                    # it could be stored twice if that relay's copy is older than the
                    # stream's duplicate window.
                    batch.settle(index, EXPIRED)
                    continue
                if not nc.is_connected:
                    batch.settle(index, PublishOutcome.unavailable("NATS connection lost"))
                    continue
                reply = f"{base}{index}"
                key = reply.encode()
                tokens.append(key)
                self._pending[key] = (batch, index)
                try:
                    await nc.publish(message.subject, message.payload, reply=reply, headers=headers)
                except Exception as exc:
                    broken = nc.is_closed or not nc.is_connected
                    outcome = (
                        PublishOutcome.unavailable(_reason(exc))
                        if broken
                        else PublishOutcome.failed(_reason(exc))
                    )
                    batch.settle(index, outcome)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(batch.done), self.ack_timeout)
        finally:
            self._batches.discard(batch)
            for key in tokens:
                self._pending.pop(key, None)
        if batch.remaining:
            # No ack in time. If the stream acked others of this batch it was working, so
            # the silence is this message's; if it acked none, the broker is at fault.
            text = f"no ack from JetStream within {self.ack_timeout:g} s"
            batch.abandon(
                PublishOutcome.failed(text) if batch.acked else PublishOutcome.unavailable(text)
            )
        return [o if o is not None else DELIVERED for o in batch.outcomes]

    async def _on_ack(self, msg: Any) -> None:
        entry = self._pending.pop(msg.subject.encode(), None)
        if entry is None:
            return
        batch, index = entry
        batch.settle(index, ack_outcome(msg.data, msg.headers))


def ack_outcome(data: bytes, headers: Mapping[str, str] | None = None) -> PublishOutcome:
    """The outcome of one JetStream publish ack, e.g. ``{"stream":"X", "seq":1,
    "duplicate": true}`` (the server puts spaces where it likes: parse, don't grep)."""
    if headers and headers.get("Status") == "503":
        return PublishOutcome.failed("no JetStream stream covers this subject")
    if b"error" not in data and b"duplicate" not in data:
        # The common ack, {"stream":"X","seq":N}: nothing to parse out of it.
        return DELIVERED if data.startswith(b"{") else _unreadable(data)
    try:
        ack = json.loads(data)
    except ValueError:
        return _unreadable(data)
    if not isinstance(ack, dict):
        return _unreadable(data)
    err = ack.get("error")
    if err:
        if isinstance(err, dict):
            return PublishOutcome.failed(
                f"JetStream error {err.get('code')}: {err.get('description')}"
            )
        return PublishOutcome.failed(f"JetStream error: {err}")
    return DELIVERED_DUPLICATE if ack.get("duplicate") is True else DELIVERED


def _unreadable(data: bytes) -> PublishOutcome:
    return PublishOutcome.failed(f"unreadable JetStream ack: {data[:80]!r}")


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
