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

On commit, inside the open transaction:

1. drain the events of every tracked aggregate, in the order they were recorded, and
   stamp them from the request context (correlation, causation, tenant, actor);
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
from collections.abc import Coroutine, Iterable, Mapping
from contextvars import ContextVar, Token
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from qxdb.context import RequestContext, current_context
from qxdb.domain import AggregateRoot, DomainEvent, Event, IntegrationEvent
from qxdb.engine import SessionFactory
from qxdb.errors import ConfigurationError, Error
from qxdb.outbox.recorder import OutboxRecorder
from qxdb.repository import Repository

__all__ = ["DispatchLoopError", "EventDispatcher", "UnitOfWork", "UnitOfWorkScope"]

R = TypeVar("R", bound=Repository[Any])
State = Literal["open", "committing", "committed", "rolled_back", "failed"]

DEFAULT_MAX_EVENT_ROUNDS = 10
_NO_CORRELATION = UUID(int=0)
# Names a registered repository may not take: they are attributes of the scope or the uow.
_RESERVED = frozenset(
    {"session", "scope", "commit", "rollback", "track", "repository", "register", "begin", "state"}
)


@runtime_checkable
class EventDispatcher(Protocol):
    """Hands a domain event to its in-process handlers (inside the transaction)."""

    async def publish(self, event: DomainEvent) -> None: ...


class DispatchLoopError(Error):
    """Handlers kept recording events beyond the unit of work's bound."""

    default_code = "uow.dispatch_loop"


class UnitOfWorkScope:
    """One entry into a :class:`UnitOfWork`: a session, tracked aggregates, repositories.

    Registered repositories are attributes (``tx.users``), bound to this scope's session
    and reporting the aggregates they load, add or save.
    """

    def __init__(self, uow: UnitOfWork, session: AsyncSession) -> None:
        self._uow = uow
        self._session = session
        self._tracked: dict[int, AggregateRoot] = {}
        self._state: State = "open"
        self._owner = asyncio.current_task()
        self._token: Token[UnitOfWorkScope | None] | None = None

    @property
    def session(self) -> AsyncSession:
        return self._session

    @property
    def state(self) -> State:
        return self._state

    def track(self, aggregate: AggregateRoot) -> None:
        """Have the aggregate's events drained on commit (repositories do this for you)."""
        self._tracked.setdefault(id(aggregate), aggregate)

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

    async def commit(self) -> None:
        """Dispatch and record the events, then commit; on any failure roll back and raise."""
        if self._state == "committed":
            return
        if self._state != "open":
            raise RuntimeError(f"cannot commit a unit of work that is {self._state}")
        self._state = "committing"
        try:
            events = await self._dispatch_all()
            if events and self._uow._outbox is None:
                raise ConfigurationError(
                    f"{len(events)} integration event(s) recorded but this UnitOfWork "
                    "has no outbox recorder (pass outbox=DefaultOutboxRecorder())"
                )
            # The outbox INSERT and the COMMIT run to their end even if this task is
            # cancelled meanwhile: a statement interrupted half-way can leave the
            # connection, its transaction and its locks behind (aiosqlite keeps a
            # force-closed connection's write lock until garbage collection). The
            # cancellation is re-raised once the outcome is settled.
            interrupted = await _run_to_completion(self._write(events))
        except BaseException:
            self._state = "failed"
            self._discard_events()
            await self._abandon()
            raise
        self._state = "committed"
        if interrupted:
            raise asyncio.CancelledError

    async def _write(self, events: list[Event]) -> None:
        if events:
            assert self._uow._outbox is not None
            await self._uow._outbox.record(self._session, events)
        await self._session.commit()

    async def rollback(self) -> None:
        """Roll back and discard pending events (no-op once committed or rolled back)."""
        if self._state in ("committed", "rolled_back", "failed"):
            return
        self._state = "rolled_back"
        self._discard_events()
        await self._abandon()

    def _discard_events(self) -> None:
        for aggregate in self._tracked.values():
            aggregate.pull_events()
        self._tracked.clear()

    async def _abandon(self) -> None:
        """Roll back; if the connection is unusable (killed, cancelled mid-statement),
        invalidate it so the pool never hands it out again."""
        try:
            await self._session.rollback()
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
                    raise TypeError(
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


def _enrich(event: Event, aggregate: AggregateRoot, ctx: RequestContext) -> Event:
    update: dict[str, Any] = {}
    if event.correlation_id is None and ctx.correlation_id != _NO_CORRELATION:
        update["correlation_id"] = ctx.correlation_id
    if event.causation_id is None and ctx.causation_id is not None:
        update["causation_id"] = ctx.causation_id
    if event.tenant_id is None:
        tenant = aggregate.tenant_id or ctx.tenant_id
        if tenant is not None:
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
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        dispatcher: EventDispatcher | None = None,
        outbox: OutboxRecorder | None = None,
        repositories: Mapping[str, type[Repository[Any]]] | None = None,
        *,
        max_event_rounds: int = DEFAULT_MAX_EVENT_ROUNDS,
    ) -> None:
        if max_event_rounds < 1:
            raise ValueError("max_event_rounds must be at least 1")
        self._factory = session_factory
        self._dispatcher = dispatcher
        self._outbox = outbox
        self.max_event_rounds = max_event_rounds
        self._repositories: dict[str, type[Repository[Any]]] = {}
        self._current: ContextVar[UnitOfWorkScope | None] = ContextVar(
            f"qxdb_uow_{id(self):x}", default=None
        )
        for name, cls in (repositories or {}).items():
            self.register(name, cls)

    def register(self, name: str, repository_cls: type[Repository[Any]]) -> None:
        """Make ``repository_cls`` reachable as ``tx.<name>`` in every scope."""
        if not name.isidentifier() or name.startswith("_") or name in _RESERVED:
            raise ValueError(f"{name!r} cannot name a repository on a unit of work")
        if not (isinstance(repository_cls, type) and issubclass(repository_cls, Repository)):
            raise TypeError(f"{repository_cls!r} is not a Repository subclass")
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

    # The scope of the calling task, for the `async with uow:` form and for handlers.

    @property
    def scope(self) -> UnitOfWorkScope:
        scope = self._current.get()
        if scope is None or scope.state not in ("open", "committing"):
            raise RuntimeError("no unit of work is open here; use `async with uow:` first")
        if scope._owner is not asyncio.current_task():
            raise RuntimeError(
                "this unit of work was entered by another task; a session cannot be shared "
                "between tasks, so enter the unit of work in this task"
            )
        return scope

    @property
    def session(self) -> AsyncSession:
        return self.scope.session

    def track(self, aggregate: AggregateRoot) -> None:
        self.scope.track(aggregate)

    def repository(self, cls: type[R]) -> R:
        return self.scope.repository(cls)

    async def commit(self) -> None:
        await self.scope.commit()

    async def rollback(self) -> None:
        await self.scope.rollback()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.__dict__.get("_repositories", {}):
            raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")
        return getattr(self.scope, name)

    def _enter(self) -> UnitOfWorkScope:
        outer = self._current.get()
        if (
            outer is not None
            and outer.state in ("open", "committing")
            and outer._owner is asyncio.current_task()
        ):
            raise RuntimeError(
                "this task is already inside this unit of work; use the open scope instead "
                "of nesting a second transaction"
            )
        scope = UnitOfWorkScope(self, self._factory())
        scope._token = self._current.set(scope)
        return scope

    async def _exit(self, scope: UnitOfWorkScope, *, commit: bool, failing: bool) -> None:
        try:
            if commit and scope.state != "rolled_back":  # an explicit rollback() stands
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
                await scope.session.close()
            finally:
                if scope._token is not None:
                    self._current.reset(scope._token)
                    scope._token = None
