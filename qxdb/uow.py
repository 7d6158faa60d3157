"""``UnitOfWork``: one transaction around one operation, with its events.

Two forms, as in the reference::

    async with uow.begin() as tx:          # commits on a clean exit, rolls back on error
        await tx.users.add(user)

    async with uow:                        # rolls back unless commit() was called
        await uow.users.add(user)
        await uow.commit()

Each entry opens its own *scope* (:class:`UnitOfWorkScope`): a session from the factory,
the aggregates its repositories touched, its repositories. The scope lives in a
``ContextVar``, so one ``UnitOfWork`` object shared by many concurrent tasks gives each
task its own session and its own tracked aggregates.

A scope is a state machine; only ``open`` (and ``committing``, while event handlers run)
can write::

    open ──commit()──> committing ──> committed ──(block ends)──> closed
      │                    └──(any failure)──> failed ──────────────┘
      └──rollback() / error / no commit──> rolled_back ─────────────┘

In every other state a statement on the scope's session (so any repository call),
``commit()``, ``track()`` and recording an event on a tracked aggregate raise
:class:`~qxdb.errors.UnitOfWorkStateError` naming the state, instead of writing nothing.
``rollback()`` is idempotent, and refused only once committed.

The scope's session may be used by child tasks of the block (``asyncio.gather`` over
``tx.users.get(...)``): its statements are serialised on a lock, because one connection
runs one statement at a time; ``commit()`` waits for the statements in flight.

On commit, inside the open transaction:

1. drain the events of every tracked aggregate, in the order they were recorded, and
   stamp them from the request context (correlation, causation, tenant, actor): the
   tenant is the context's, never the aggregate's;
2. hand domain events to the :class:`EventDispatcher`; events that handlers record are
   drained in further rounds, at most ``max_event_rounds`` (a :class:`DispatchLoopError`
   stops a runaway loop);
3. write all integration events with one multi-row ``INSERT`` (the outbox recorder);
4. ``COMMIT``.

Any failure, cancellation included, rolls the whole transaction back, discards the events
and reaches the caller as an exception: never a silent success.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar, Token
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from qxdb.context import RequestContext, current_context
from qxdb.core.defaults import MAX_EVENT_ROUNDS
from qxdb.domain import (
    GUARD_ATTR,
    AggregateRoot,
    DomainEvent,
    Event,
    IntegrationEvent,
    set_record_guard,
)
from qxdb.engine import SessionFactory
from qxdb.errors import (
    ConfigurationError,
    DispatchLoopError,
    TenantScopeError,
    UnitOfWorkStateError,
    ValidationError,
)
from qxdb.outbox.recorder import OutboxRecorder
from qxdb.repository import Repository
from qxdb.rls import install_tenant_setting

__all__ = [
    "DispatchLoopError",
    "EventDispatcher",
    "State",
    "UnitOfWork",
    "UnitOfWorkScope",
]

R = TypeVar("R", bound=Repository[Any])
State = Literal["open", "committing", "committed", "rolled_back", "failed", "closed"]
# "writing" is committing's last step (outbox INSERT, COMMIT), reported as "committing".
_Internal = Literal["open", "committing", "writing", "committed", "rolled_back", "failed", "closed"]

DEFAULT_MAX_EVENT_ROUNDS = MAX_EVENT_ROUNDS
_NO_CORRELATION = UUID(int=0)
# Names a registered repository may not take: they are attributes of the scope or the uow.
_RESERVED = frozenset(
    {"session", "scope", "commit", "rollback", "track", "repository", "register", "begin", "state"}
)
_WRITABLE = frozenset({"open", "committing"})
# The session methods that reach the database: guarded by the state and serialised.
_GUARDED_METHODS = (
    "execute",
    "scalar",
    "scalars",
    "get",
    "get_one",
    "merge",
    "flush",
    "refresh",
    "delete",
    "run_sync",
    "stream",
    "stream_scalars",
    "connection",
    # A savepoint cannot commit the unit of work's transaction (the repositories' own
    # add_many/save/upsert use one), so it is only refused once the scope cannot write.
    "begin_nested",
)
# The session methods that end or start the unit of work's own transaction: refused on the
# scope's session. A session.commit() would commit the rows without their outbox events
# (which only tx.commit() writes) and leave the scope "open"; session.begin() would commit
# at the end of its block the same way; session.rollback() would leave the scope "open".
_REFUSED_METHODS = ("commit", "rollback", "begin")
_WHY: dict[str, str] = {
    "committed": "it has committed, so a write now would never be saved",
    "rolled_back": "it was rolled back, so a write now would never be saved",
    "failed": "its commit failed and it was rolled back, so a write now would never be saved",
    "closed": "its block has ended and its session is closed",
    "committing": "it is committing; wait for commit() to return",
}


@runtime_checkable
class EventDispatcher(Protocol):
    """Hands a domain event to its in-process handlers (inside the transaction)."""

    async def publish(self, event: DomainEvent) -> None: ...


def _refusal(state: str, action: str) -> UnitOfWorkStateError:
    why = _WHY.get(state, f"it is {state}")
    return UnitOfWorkStateError(
        state,
        f"cannot {action}: this unit of work is {state.replace('_', ' ')} ({why}); "
        "open a new unit of work for it",
    )


class UnitOfWorkScope:
    """One entry into a :class:`UnitOfWork`: a session, tracked aggregates, repositories.

    Registered repositories are attributes (``tx.users``), bound to this scope's session
    and reporting the aggregates they load, add or save.
    """

    def __init__(self, uow: UnitOfWork, session: AsyncSession) -> None:
        self._uow = uow
        self._session = session
        self._tracked: dict[int, AggregateRoot] = {}
        self._state: _Internal = "open"
        self._owner = asyncio.current_task()
        self._writer: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()
        self._token: Token[UnitOfWorkScope | None] | None = None
        # The scope's own commit and rollback (before they are shadowed below).
        self._session_commit = session.commit
        self._session_rollback = session.rollback
        for name in _REFUSED_METHODS:
            setattr(session, name, self._refused(name))
        for name in _GUARDED_METHODS:
            # Instance attributes shadow the class's methods: every caller of this session
            # (repositories, handlers, user code) goes through the guard, and the session
            # stays a real AsyncSession.
            method = getattr(session, name, None)
            if method is not None:  # (get_one is newer than some SQLAlchemy 2.0 releases)
                setattr(session, name, self._guarded(name, method))

    @property
    def session(self) -> AsyncSession:
        return self._session

    @property
    def state(self) -> State:
        return "committing" if self._state == "writing" else self._state

    # -- the guard ---------------------------------------------------------------------

    def _require_writable(self, action: str) -> None:
        if self._state not in _WRITABLE:
            raise _refusal(self.state, action)

    def _refused(self, name: str) -> Callable[..., Any]:
        instead = "tx.rollback()" if name == "rollback" else "tx.commit()"

        def refused(*args: Any, **kwargs: Any) -> Any:
            # Raised on the call itself (not when awaited): `session.begin()` is not a
            # coroutine, and a refused commit must not depend on being awaited.
            raise UnitOfWorkStateError(
                self.state,
                f"cannot call session.{name}() on a unit of work's session: its transaction "
                "belongs to the unit of work, whose commit writes the outbox events with the "
                f"rows; use {instead} (or let the `async with uow.begin()` block end)",
                code="uow.session_transaction",
            )

        return refused

    def _guarded(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        action = f"run session.{name}()"
        if name == "begin_nested":
            # Not a coroutine: it returns the savepoint's context manager, whose SQL runs
            # through the guarded connection() when the savepoint is entered.
            def guarded_sync(*args: Any, **kwargs: Any) -> Any:
                self._require_writable(action)
                return method(*args, **kwargs)

            return guarded_sync

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._state == "writing" and asyncio.current_task() is self._writer:
                return await method(*args, **kwargs)  # commit's own outbox INSERT
            self._require_writable(action)
            async with self._lock:
                self._require_writable(action)  # it may have changed while we waited
                return await method(*args, **kwargs)

        return guarded

    def _check_recording(self, aggregate: AggregateRoot) -> None:
        """Called by a tracked aggregate before it records an event."""
        if self._state not in _WRITABLE:
            raise _refusal(
                self.state, f"record an event on {type(aggregate).__name__} {aggregate.id}"
            )

    def track(self, aggregate: AggregateRoot) -> None:
        """Have the aggregate's events drained on commit (repositories do this for you)."""
        if not isinstance(aggregate, AggregateRoot):
            raise ValidationError(f"track() takes an AggregateRoot, got {type(aggregate).__name__}")
        self._require_writable(f"track {type(aggregate).__name__} {aggregate.id}")
        if id(aggregate) not in self._tracked:
            self._tracked[id(aggregate)] = aggregate
            set_record_guard(aggregate, self._check_recording)

    def _release(self) -> None:
        """Let go of the tracked aggregates: they may record events again, for another
        unit of work to drain."""
        mine = self._check_recording
        for aggregate in self._tracked.values():
            # Only our own guard: another scope may have tracked the aggregate since.
            if aggregate.__dict__.get(GUARD_ATTR) == mine:
                set_record_guard(aggregate, None)
        self._tracked.clear()

    # -- repositories --------------------------------------------------------------

    def repository(self, cls: type[R]) -> R:
        """A repository of ``cls`` bound to this scope (typed access)."""
        repo = cls(self._session, self)
        return repo

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        cls = self._uow._repositories.get(name)
        if cls is None:
            known = ", ".join(sorted(self._uow._repositories)) or "none"
            raise AttributeError(
                f"no repository named {name!r} is registered on this unit of work "
                f"(registered: {known})"
            )
        repo = cls(self._session, self)
        # Cached as a plain attribute: later accesses skip __getattr__.
        self.__dict__[name] = repo
        return repo

    # -- transitions -----------------------------------------------------------------

    async def commit(self) -> None:
        """Dispatch and record the events, then commit; on any failure roll back and raise."""
        self._require_writable("commit")
        if self._state == "committing":
            raise _refusal("committing", "commit again from an event handler")
        self._state = "committing"
        try:
            events = await self._dispatch_all()
            if events and self._uow._outbox is None:
                raise ConfigurationError(
                    f"{len(events)} integration event(s) recorded but this UnitOfWork "
                    "has no outbox recorder (pass outbox=DefaultOutboxRecorder())"
                )
            async with self._lock:  # the statements of child tasks in flight end first
                self._state = "writing"
            # The outbox INSERT and the COMMIT run to their end even if this task is
            # cancelled meanwhile: a statement interrupted half-way can leave the
            # connection, its transaction and its locks behind (aiosqlite keeps a
            # force-closed connection's write lock until garbage collection). The
            # cancellation is re-raised once the outcome is settled.
            interrupted = await _run_to_completion(self._write(events))
        except BaseException:
            self._state = "failed"
            self._discard_events()
            async with self._lock:  # a child task's statement in flight ends first
                await self._abandon()
            raise
        self._state = "committed"
        if interrupted:
            raise asyncio.CancelledError

    async def _write(self, events: list[Event]) -> None:
        self._writer = asyncio.current_task()
        if events:
            assert self._uow._outbox is not None
            await self._uow._outbox.record(self._session, events)
        await self._session_commit()

    async def rollback(self) -> None:
        """Roll back and discard pending events (again: nothing to do; once committed:
        :class:`~qxdb.errors.UnitOfWorkStateError`, a commit cannot be undone)."""
        if self._state in ("rolled_back", "failed", "closed"):
            return
        if self._state == "committed":
            raise _refusal("committed", "roll back")
        if self._state in ("committing", "writing"):
            raise _refusal("committing", "roll back from an event handler")
        self._state = "rolled_back"
        self._discard_events()
        async with self._lock:
            await self._abandon()

    async def _close(self) -> None:
        """End of the block: no call is accepted after this."""
        self._state = "closed"
        self._release()
        async with self._lock:
            await self._session.close()

    def _discard_events(self) -> None:
        # The aggregates stay tracked (and guarded) until the block ends, so an event
        # recorded on them now is refused rather than silently dropped.
        for aggregate in self._tracked.values():
            aggregate.pull_events()

    async def _abandon(self) -> None:
        """Roll back; if the connection is unusable (killed, cancelled mid-statement),
        invalidate it so the pool never hands it out again."""
        try:
            await self._session_rollback()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._session.invalidate()
            raise

    async def _dispatch_all(self) -> list[Event]:
        ctx = current_context()
        dispatcher = self._uow._dispatcher
        integration: list[Event] = []
        rounds = 0
        while batch := self._drain(ctx):
            rounds += 1
            if rounds > self._uow.max_event_rounds:
                raise DispatchLoopError(
                    f"event handlers were still recording events after "
                    f"{self._uow.max_event_rounds} rounds; is a handler re-raising the event "
                    f"it handles? (next: {batch[0].event_name})",
                    details={"rounds": rounds - 1, "next_event": batch[0].event_name},
                )
            for event in batch:
                if isinstance(event, IntegrationEvent):
                    integration.append(event)
                elif isinstance(event, DomainEvent):
                    if dispatcher is not None:
                        await dispatcher.publish(event)
                else:
                    raise ValidationError(
                        f"{type(event).__name__} is neither a DomainEvent nor an "
                        "IntegrationEvent; the unit of work does not know where it goes"
                    )
        return integration

    def _drain(self, ctx: RequestContext) -> list[Event]:
        per_aggregate: list[list[tuple[Event, AggregateRoot]]] = []
        for aggregate in list(self._tracked.values()):
            if aggregate.has_pending_events:
                per_aggregate.append([(e, aggregate) for e in aggregate.pull_events()])
        if not per_aggregate:
            return []
        # Each aggregate's events keep their order; across aggregates the time-ordered
        # (UUID v7) event ids interleave them as they were recorded.
        ordered: Iterable[tuple[Event, AggregateRoot]] = (
            per_aggregate[0]
            if len(per_aggregate) == 1
            else heapq.merge(*per_aggregate, key=lambda pair: pair[0].event_id)
        )
        return [_enrich(event, aggregate, ctx) for event, aggregate in ordered]


async def _run_to_completion(work: Coroutine[Any, Any, None]) -> bool:
    """Await ``work`` to its end even if the caller is cancelled; say whether it was."""
    task = asyncio.ensure_future(work)
    interrupted = False
    while True:
        try:
            await asyncio.shield(task)
            return interrupted
        except asyncio.CancelledError:
            if not task.done():
                interrupted = True
                continue
            if task.cancelled():
                raise
            task.result()  # the work's own failure, if it failed
            return True


def _event_tenant(event: Event, aggregate: AggregateRoot, ctx: RequestContext) -> UUID | None:
    """The tenant an outbox row is stamped with: the request context's.

    An aggregate's ``tenant_id`` is data the caller can change (``save`` never writes it,
    so the row stays its tenant's), and an event's may be forged: outside
    :func:`~qxdb.context.system_scope` neither is trusted, and an event that names
    another tenant than the context's is refused. Inside ``system_scope()`` (explicit
    cross-tenant work) the event's, else its aggregate's, tenant stands.
    """
    if ctx.system:
        return event.tenant_id or aggregate.tenant_id
    if event.tenant_id is not None and event.tenant_id != ctx.tenant_id:
        raise TenantScopeError(
            f"event {event.event_name} names tenant {event.tenant_id}, but the request "
            f"context's tenant is {ctx.tenant_id}: an event is stamped with the context's "
            "tenant (use system_scope() for cross-tenant work)",
            code="tenant_scope.mismatch",
        )
    return ctx.tenant_id


def _enrich(event: Event, aggregate: AggregateRoot, ctx: RequestContext) -> Event:
    update: dict[str, Any] = {}
    if event.correlation_id is None and ctx.correlation_id != _NO_CORRELATION:
        update["correlation_id"] = ctx.correlation_id
    if event.causation_id is None and ctx.causation_id is not None:
        update["causation_id"] = ctx.causation_id
    tenant = _event_tenant(event, aggregate, ctx)
    if tenant != event.tenant_id:
        update["tenant_id"] = tenant
    if event.actor_id is None and ctx.user_id is not None:
        update["actor_id"] = ctx.user_id
    return event.model_copy(update=update) if update else event


class _Entry:
    """``async with uow.begin()``: the scope, committed on a clean exit."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._scope: UnitOfWorkScope | None = None

    async def __aenter__(self) -> UnitOfWorkScope:
        self._scope = self._uow._enter()
        return self._scope

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self._scope is not None
        await self._uow._exit(self._scope, commit=exc is None, failing=exc is not None)


class UnitOfWork:
    """Transactions for many concurrent operations, one scope per ``async with``.

    ``repositories`` maps attribute names to repository classes (or call
    :meth:`register`); each scope builds them on first access, bound to its session.
    ``rls=True`` sets ``qx.tenant_id`` (and the system-scope bypass) at the start of each
    transaction on PostgreSQL, for row-level security policies (:mod:`qxdb.rls`).
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        dispatcher: EventDispatcher | None = None,
        outbox: OutboxRecorder | None = None,
        repositories: Mapping[str, type[Repository[Any]]] | None = None,
        *,
        max_event_rounds: int = DEFAULT_MAX_EVENT_ROUNDS,
        rls: bool = False,
    ) -> None:
        if isinstance(max_event_rounds, bool) or not isinstance(max_event_rounds, int):
            raise ConfigurationError("max_event_rounds must be a whole number")
        if max_event_rounds < 1:
            raise ConfigurationError("max_event_rounds must be at least 1")
        self._factory = session_factory
        # rls=True: each transaction starts by setting the request context's tenant for
        # PostgreSQL row-level security (qxdb.rls; one round trip per transaction).
        if not isinstance(rls, bool):
            raise ConfigurationError("rls must be True or False")
        self._rls = rls
        self._dispatcher = dispatcher
        self._outbox = outbox
        self.max_event_rounds = max_event_rounds
        self._repositories: dict[str, type[Repository[Any]]] = {}
        self._current: ContextVar[UnitOfWorkScope | None] = ContextVar(
            f"qxdb_uow_{id(self):x}", default=None
        )
        if repositories is not None and not isinstance(repositories, Mapping):
            raise ConfigurationError(
                "repositories must map attribute names to Repository classes, "
                f"got {type(repositories).__name__}"
            )
        for name, cls in (repositories or {}).items():
            self.register(name, cls)

    def register(self, name: str, repository_cls: type[Repository[Any]]) -> None:
        """Make ``repository_cls`` reachable as ``tx.<name>`` in every scope."""
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or name.startswith("_")
            or name in _RESERVED
        ):
            raise ConfigurationError(f"{name!r} cannot name a repository on a unit of work")
        if not (isinstance(repository_cls, type) and issubclass(repository_cls, Repository)):
            raise ConfigurationError(f"{repository_cls!r} is not a Repository subclass")
        self._repositories[name] = repository_cls

    def begin(self) -> _Entry:
        """``async with uow.begin() as tx``: commit on a clean exit, roll back on error."""
        return _Entry(self)

    async def __aenter__(self) -> UnitOfWork:
        self._enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        scope = self._current.get()
        assert scope is not None, "UnitOfWork exited without a matching enter"
        await self._exit(scope, commit=False, failing=exc is not None)

    # The scope of the calling task (or of the task that started it), for the
    # `async with uow:` form and for handlers.

    @property
    def scope(self) -> UnitOfWorkScope:
        scope = self._current.get()
        if scope is None:
            raise UnitOfWorkStateError(
                "none", "no unit of work is open here; use `async with uow:` first"
            )
        if scope.state not in _WRITABLE:
            raise _refusal(scope.state, "use this unit of work")
        return scope

    @property
    def session(self) -> AsyncSession:
        return self.scope.session

    def track(self, aggregate: AggregateRoot) -> None:
        self.scope.track(aggregate)

    def repository(self, cls: type[R]) -> R:
        return self.scope.repository(cls)

    async def commit(self) -> None:
        scope = self._current.get()
        if scope is None:
            raise UnitOfWorkStateError("none", "cannot commit: no unit of work is open here")
        await scope.commit()

    async def rollback(self) -> None:
        scope = self._current.get()
        if scope is None:
            raise UnitOfWorkStateError("none", "cannot roll back: no unit of work is open here")
        await scope.rollback()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.__dict__.get("_repositories", {}):
            raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")
        return getattr(self.scope, name)

    def _enter(self) -> UnitOfWorkScope:
        outer = self._current.get()
        if (
            outer is not None
            and outer._state in ("open", "committing", "writing")
            and outer._owner is asyncio.current_task()
        ):
            raise UnitOfWorkStateError(
                outer.state,
                "this task is already inside this unit of work; use the open scope instead "
                "of nesting a second transaction",
                code="uow.nested",
            )
        session = self._factory()
        if self._rls:
            install_tenant_setting(session)
        scope = UnitOfWorkScope(self, session)
        scope._token = self._current.set(scope)
        return scope

    async def _exit(self, scope: UnitOfWorkScope, *, commit: bool, failing: bool) -> None:
        try:
            if scope._state == "open":  # else commit() or rollback() already settled it
                if commit:
                    await scope.commit()
                elif failing:
                    # The body's exception is the one the caller must see; a rollback on a
                    # broken connection must not replace it (the connection is invalidated).
                    with contextlib.suppress(Exception):
                        await scope.rollback()
                else:
                    await scope.rollback()
        finally:
            try:
                await scope._close()
            finally:
                if scope._token is not None:
                    self._current.reset(scope._token)
                    scope._token = None
