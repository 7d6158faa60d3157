"""The request context: who is acting, for which tenant, under which correlation id.

It lives in a ``ContextVar``, so concurrent asyncio tasks each see their own. Repositories
read the tenant from here; the unit of work stamps events with it.

A tenanted repository refuses to run without a tenant. Back-office jobs that really mean
to touch every tenant say so in code with :func:`system_scope`, which is easy to grep for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from qxdb.ids import uuid7

__all__ = [
    "RequestContext",
    "current_context",
    "request_scope",
    "reset_context",
    "set_context",
    "system_scope",
]


@dataclass(frozen=True, slots=True)
class RequestContext:
    correlation_id: UUID = field(default_factory=uuid7)
    causation_id: UUID | None = None
    tenant_id: UUID | None = None
    user_id: UUID | None = None
    # True only inside `system_scope()`: tenanted repositories then see every tenant.
    system: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor_id(self) -> UUID | None:
        return self.user_id


_EMPTY = RequestContext(correlation_id=UUID(int=0))
_current: ContextVar[RequestContext] = ContextVar("qxdb_request_context", default=_EMPTY)


def current_context() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext) -> Token[RequestContext]:
    return _current.set(ctx)


def reset_context(token: Token[RequestContext]) -> None:
    _current.reset(token)


@contextmanager
def request_scope(
    *,
    tenant_id: UUID | None = None,
    user_id: UUID | None = None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
    **extra: Any,
) -> Iterator[RequestContext]:
    """Run a block as one request: a fresh context, restored on exit."""
    ctx = RequestContext(
        correlation_id=correlation_id or uuid7(),
        causation_id=causation_id,
        tenant_id=tenant_id,
        user_id=user_id,
        extra=dict(extra),
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextmanager
def system_scope(*, user_id: UUID | None = None) -> Iterator[RequestContext]:
    """Explicitly act across all tenants (back-office jobs, migrations of data).

    Tenanted repositories stop filtering by tenant inside this block, and only here.
    """
    base = _current.get()
    ctx = replace(base, system=True, tenant_id=None, user_id=user_id or base.user_id)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
