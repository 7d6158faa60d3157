"""W3C trace context through the outbox, with OpenTelemetry when it is installed.

- **Recording:** inside an active, valid span, the recorder stores the W3C
  ``traceparent`` (and ``tracestate``) in the row's ``headers`` column.
- **Relaying:** a row with a ``traceparent`` is published with it as a NATS header. When
  ``opentelemetry-api`` is installed, the relay also opens a *producer* span per such
  message, a child of the recorded context (so the request's trace goes on), with the
  messaging attributes (``messaging.system=nats``, destination, message id), and sends
  *its* context, so a consumer that reads the header joins the same trace below it.
  A message whose recorded context is not sampled gets no producer span (the request's
  trace is recorded nowhere); its recorded context is sent unchanged.

Without ``opentelemetry-api`` nothing of it is imported (a module lookup once, no more)
and rows carry no trace headers; nothing else changes. Spans are named by the OTel
messaging conventions: ``publish <subject>``, kind ``PRODUCER``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

__all__ = ["TRACE_HEADERS", "ProducerSpans", "current_trace_headers", "tracing_available"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
_TRACER_NAME = "qxdb.outbox.relay"


@cache
def tracing_available() -> bool:
    """True when ``opentelemetry-api`` can be imported (looked up once, not imported)."""
    return importlib.util.find_spec("opentelemetry") is not None and (
        importlib.util.find_spec("opentelemetry.trace") is not None
    )


@cache
def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def current_trace_headers() -> dict[str, str]:
    """``traceparent``/``tracestate`` of the active span; empty without one (or without
    OpenTelemetry). Unsampled spans are carried too: the sampling flag travels with them."""
    if not tracing_available():
        return {}
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}


def _sampled(traceparent: str) -> bool:
    """The sampled bit of a W3C traceparent (``00-<trace>-<span>-<flags>``)."""
    try:
        return bool(int(traceparent[-2:], 16) & 1)
    except ValueError:
        return False


class ProducerSpans:
    """The producer spans of one batch: :meth:`start` before the publish (returns the
    headers to send), :meth:`end` with each message's outcome."""

    def __init__(self) -> None:
        self._tracer: Any = None  # taken at the first sampled message: most batches have none
        self._spans: list[Any] = []

    def start(self, recorded: Mapping[str, str], subject: str, msg_id: str) -> Mapping[str, str]:
        """Open the span of one message recorded under ``recorded`` (its trace headers);
        return the headers that carry the producer span's own context."""
        parent_header = recorded.get(TRACEPARENT)
        if parent_header is None or not _sampled(parent_header):
            # An unsampled request is recorded nowhere, and the default (parent-based)
            # sampler would drop a span under it: skip the span, keep the context. This
            # keeps tracing that is on but unsampled nearly free (a span costs tens of
            # microseconds, a quarter of the relay's whole budget per event).
            self._spans.append(None)
            return recorded
        from opentelemetry import trace

        if self._tracer is None:
            self._tracer = trace.get_tracer(_TRACER_NAME)
        parent = _propagator().extract(recorded)
        span = self._tracer.start_span(
            f"publish {subject}",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": subject,
                "messaging.message.id": msg_id,
            },
        )
        self._spans.append(span)
        carrier: dict[str, str] = {}
        _propagator().inject(carrier, context=trace.set_span_in_context(span))
        # An invalid recorded context yields an invalid span: keep what was recorded.
        return carrier or recorded

    def end(self, errors: Sequence[str | None]) -> None:
        """Close the spans in start order; ``errors[i]`` is message i's error, if any."""
        from opentelemetry.trace import Status, StatusCode

        for span, error in zip(self._spans, errors, strict=False):
            if span is None:
                continue
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end()
        self._spans.clear()
