"""The request context: who is acting, for which tenant, under which correlation id.

It lives in a ``ContextVar``, so concurrent asyncio tasks each see their own. Repositories
read the tenant from here; the unit of work stamps events with it.

Its ids are checked when it is made (:class:`RequestContext`, :func:`request_scope`,
:func:`system_scope`): a ``UUID`` or its canonical text (normalised to a ``UUID``), else a
:class:`~qxdb.errors.ValidationError`, so a wrong id never reaches a driver (where
PostgreSQL would abort the transaction and SQLite would fail to bind text to a UUID column).

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

from qxdb.errors import ValidationError
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

    def __post_init__(self) -> None:
        # One check for every way a context is made (also dataclasses.replace), so every
        # reader (repositories, the unit of work, the outbox) can trust the types.
        for name in _ID_FIELDS:
            value = getattr(self, name)
            if type(value) is UUID:
                continue
            if value is None:
                if name == "correlation_id":
                    raise ValidationError(
                        "request context correlation_id cannot be None", details={"field": name}
                    )
                continue
            object.__setattr__(self, name, _checked_id(name, value))
        if not isinstance(self.system, bool):
            raise ValidationError(
                f"request context system must be a bool, got {type(self.system).__name__}",
                details={"field": "system"},
            )

    @property
    def actor_id(self) -> UUID | None:
        return self.user_id


_ID_FIELDS = ("correlation_id", "causation_id", "tenant_id", "user_id")


def _checked_id(name: str, value: Any) -> UUID:
    # Standard library only: the context is imported by light code (events, the command)
    # that must not pay for SQLAlchemy. The same acceptance as a UUID column's check: a
    # UUID, or its canonical text.
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            parsed = UUID(value)
        except ValueError:
            parsed = None
        if parsed is not None and str(parsed) == value.lower():
            return parsed
    shown = repr(value) if isinstance(value, str | int | float) else type(value).__name__
    raise ValidationError(
        f"request context {name}: expected a UUID, got {shown[:60]}", details={"field": name}
    )


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
        correlation_id=uuid7() if correlation_id is None else correlation_id,
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
    ctx = replace(
        base, system=True, tenant_id=None, user_id=base.user_id if user_id is None else user_id
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
