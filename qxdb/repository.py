"""``Repository[TEntity]``: typed CRUD over one table, for plain dataclass entities.

A repository works with SQLAlchemy Core statements on ``self.table`` and builds entities
itself, so there is no ORM identity map or flush in the way of a read or a write::

    class UserRepository(Repository[User]):
        entity_cls = User
        table = users_table
        filterable_fields = {"email", "name", "is_active"}
        sortable_fields = {"created_at", "email"}
        tenanted = False

What it guarantees:

- **Allow-listed queries.** Filters and sorts name only fields of the allow-lists (which
  must be columns of the table); anything else raises
  :class:`~qxdb.errors.InvalidQueryError`. Values are always bound; LIKE patterns escape
  ``%``, ``_`` and the escape character.
- **Values checked before SQL.** Every filter value, cursor value, id and written value
  passes the check of its column's type (:mod:`qxdb.values`) before a statement is built,
  so a bad one is a qxdb error naming the field, alike on both dialects, and never a
  driver error or an aborted PostgreSQL transaction. ``in`` / ``not_in`` take lists of any
  length (one array parameter on PostgreSQL, one JSON parameter on SQLite).
- **One ORDER BY** (:func:`qxdb.query.order_spec` for the keys,
  :func:`qxdb.pagination.keyset_order_by` for the SQL) shared by ``list`` and
  ``list_cursor``: the ``id`` tiebreaker follows the last key, NULL placement is explicit
  where a column can be NULL (and absent where it cannot, so both use the same index).
- **Optimistic concurrency.** ``save`` updates ``WHERE id = ? AND version = ?`` and bumps
  ``version``, ``updated_at``, ``updated_by``; a mismatch is a ``ConflictError`` failure.
  ``soft_delete`` and ``restore`` bump them too. ``save`` never writes ``id``,
  ``tenant_id``, ``created_at``, ``created_by`` (nor the deletion columns).
- **Tenancy fails closed.** On a tenanted repository every read and write is scoped to the
  tenant of the current :class:`~qxdb.context.RequestContext`; with no tenant the call
  raises :class:`~qxdb.errors.TenantScopeError`, unless the caller entered
  :func:`~qxdb.context.system_scope`. Another tenant's row looks exactly like a missing one;
  an entity whose ``tenant_id`` is another tenant's is refused by ``add``, ``save``,
  ``soft_delete``, ``restore`` and ``hard_delete`` alike (``tenant_scope.mismatch``).
- **Duplicates are conflicts.** ``add`` of a taken id or unique value (even one held by a
  soft-deleted row, or by another tenant's row, which it does not reveal) is a
  ``ConflictError`` failure and leaves the transaction usable.
- **The unit of work hears about aggregates.** Given a tracker (the unit of work's
  operation), ``get``, ``list``, ``add``, ``add_many`` and ``save`` hand it every aggregate,
  so their events are drained on commit.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import keyword
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Dialect,
    Executable,
    Select,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    all_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.type_api import TypeEngine

from qxdb.context import RequestContext, current_context
from qxdb.cursor import CursorCodec
from qxdb.domain import AggregateRoot, Entity
from qxdb.errors import (
    ConfigurationError,
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    TenantScopeError,
    ValidationError,
)
from qxdb.ids import utcnow
from qxdb.pagination import _keyset_page, keyset_order_by, validate_limit
from qxdb.query import (
    CursorPage,
    CursorPagination,
    Filter,
    OffsetPage,
    OffsetPagination,
    Sort,
    order_spec,
)
from qxdb.result import Result
from qxdb.values import Checker, check_text, checker_for, comparable, write_checker_for

__all__ = ["AggregateTracker", "Repository", "escape_like"]

TEntity = TypeVar("TEntity", bound=Entity)

LIKE_ESCAPE = "\\"
# Names of the bound parameters of prepared statements (prefixed: a bind parameter may not
# share a column's name in an UPDATE's SET clause).
_ID, _TENANT, _EXPECTED, _SET = "qx_id", "qx_tenant", "qx_expected", "qx_set_"
_LIMIT, _OFFSET = "qx_limit", "qx_offset"
# Columns that belong to the row's identity or history: an update never rewrites them.
_IMMUTABLE_ON_SAVE = frozenset(
    {"id", "tenant_id", "created_at", "created_by", "version", "deleted_at", "deleted_by"}
)


class AggregateTracker(Protocol):
    """What a repository tells about the aggregates it touches (the unit of work)."""

    def track(self, aggregate: AggregateRoot) -> None: ...


def escape_like(value: str) -> str:
    """Make ``value`` match literally inside a LIKE pattern that uses ``ESCAPE '\\'``."""
    for special in (LIKE_ESCAPE, "%", "_"):
        value = value.replace(special, LIKE_ESCAPE + special)
    return value


def _row_constructor(
    entity_cls: type[Any], names: Sequence[str], positions: Sequence[int]
) -> Callable[[Sequence[Any]], Any]:
    """``row -> entity``, compiled once per repository class.

    A plain dataclass entity (every field a column, no ``__post_init__``, instances with a
    ``__dict__``) is built as imperative mapping builds it, without calling ``__init__``:
    its ``__dict__`` is set from the row positions in one step, half the cost of the
    keyword call. Any other class is called with literal keywords (``cls(a=row[1], ...)``).
    Either way no per-row mapping view or dict of names is built.
    """
    identifiers = all(n.isidentifier() and not keyword.iskeyword(n) for n in names)
    namespace: dict[str, Any] = {"cls": entity_cls, "new": object.__new__}
    if identifiers and _plain_dataclass(entity_cls, names):
        items = ", ".join(f"{n!r}: row[{i}]" for n, i in zip(names, positions, strict=True))
        source = f"def build(row):\n    o = new(cls)\n    o.__dict__ = {{{items}}}\n    return o\n"
    elif identifiers:
        args = ", ".join(f"{n}=row[{i}]" for n, i in zip(names, positions, strict=True))
        source = f"def build(row):\n    return cls({args})\n"
    else:
        pairs = tuple(zip(names, positions, strict=True))
        return lambda row: entity_cls(**{n: row[i] for n, i in pairs})
    exec(source, namespace)
    built: Callable[[Sequence[Any]], Any] = namespace["build"]
    return built


def _plain_dataclass(entity_cls: type[Any], names: Sequence[str]) -> bool:
    """Whether an instance is fully described by its ``__dict__`` of these column fields."""
    if not dataclasses.is_dataclass(entity_cls) or hasattr(entity_cls, "__post_init__"):
        return False
    fields = dataclasses.fields(entity_cls)
    if {f.name for f in fields} != set(names) or not all(f.init for f in fields):
        return False
    try:
        probe = object.__new__(entity_cls)
        probe.__dict__  # noqa: B018 - slots classes have none
    except (AttributeError, TypeError):
        return False
    return True


class _Plan:
    """What a repository class needs to know about its table, computed once per class."""

    __slots__ = (
        "checkers",
        "columns",
        "field_columns",
        "has_deletion",
        "has_unique",
        "has_version",
        "insert",
        "make_entity",
        "required",
        "select_all",
        "statements",
        "write_checkers",
    )

    def __init__(self, repo: type[Repository[Any]], table: Table) -> None:
        name = repo.__name__
        entity_cls = getattr(repo, "entity_cls", None)
        if entity_cls is None:
            raise ConfigurationError(f"{name} has no entity_cls")
        keys = list(table.c.keys())
        columns = set(keys)
        if "id" not in columns:
            raise ConfigurationError(f"{name}: table {table.name!r} has no 'id' column")
        if dataclasses.is_dataclass(entity_cls):
            fields = [f.name for f in dataclasses.fields(entity_cls) if f.init]
            self.field_columns: tuple[str, ...] = tuple(f for f in fields if f in columns)
        else:
            self.field_columns = tuple(keys)
        for kind, allowed in (
            ("filterable", repo.filterable_fields),
            ("sortable", repo.sortable_fields),
        ):
            missing = sorted(set(allowed) - columns)
            if missing:
                raise ConfigurationError(
                    f"{name}.{kind}_fields names {missing}, which are not columns of "
                    f"table {table.name!r}"
                )
        if repo.tenanted and "tenant_id" not in columns:
            raise ConfigurationError(
                f"{name} is tenanted but table {table.name!r} has no 'tenant_id' column "
                "(set tenanted = False for a global table)"
            )
        self.has_version = "version" in columns
        self.has_deletion = "deleted_at" in columns
        self.columns = frozenset(columns)
        self.checkers: dict[str, Checker] = {c.key: checker_for(c.type) for c in table.c}
        # What add and save write: the same checks, but a JSON column takes a document.
        self.write_checkers: dict[str, Checker] = {
            c.key: write_checker_for(c.type) for c in table.c
        }
        self.required = frozenset(c.key for c in table.c if not c.nullable)
        # A save can only break a uniqueness rule when the table has one besides its key.
        self.has_unique = any(
            isinstance(con, UniqueConstraint) for con in table.constraints
        ) or any(index.unique for index in table.indexes)
        self.insert: Executable = insert(table)
        self.select_all: Select[Any] = select(table)
        self.make_entity = _row_constructor(
            entity_cls, self.field_columns, [keys.index(f) for f in self.field_columns]
        )
        self.statements: dict[tuple[Any, ...], Any] = {}

    def keyset_cache(self, shape: tuple[bool, bool]) -> dict[Any, Any]:
        """Where keyset pages of the unfiltered listing of ``shape`` keep their statements."""
        cache: dict[Any, Any] = self.statements.setdefault(("keyset", *shape), {})
        return cache


_plans: dict[tuple[type[Any], Table], _Plan] = {}


class Repository(Generic[TEntity]):
    """Base repository with typed CRUD against a single table.

    Subclasses set ``entity_cls`` and ``table`` (at class level, or ``table`` per
    instance) and the allow-lists; they may override :meth:`_row_to_entity` and
    :meth:`_entity_to_dict` when the table does not mirror the entity field for field.
    """

    entity_cls: ClassVar[type[Any]]
    table: Table
    filterable_fields: ClassVar[Iterable[str]] = frozenset()
    sortable_fields: ClassVar[Iterable[str]] = frozenset()
    # Fail closed: a repository is tenant-scoped unless it says it is global.
    tenanted: ClassVar[bool] = True
    # Signs and checks list_cursor's cursors; None: from QX_DB__CURSOR_* at each call.
    cursor_codec: ClassVar[CursorCodec | None] = None

    def __init__(self, session: AsyncSession, uow: AggregateTracker | None = None) -> None:
        self._session = session
        self._tracker = uow
        self._name = self.entity_cls.__name__
        self._held: tuple[Any, AsyncConnection] | None = None

    @functools.cached_property
    def _plan(self) -> _Plan:
        # Computed on first use, so ``table`` may also be set on the instance after
        # construction; shared by every instance of the class for the same table.
        key = (type(self), self.table)
        plan = _plans.get(key)
        if plan is None:
            plan = _plans[key] = _Plan(type(self), self.table)
        return plan

    @functools.cached_property
    def _to_entity(self) -> Callable[[Row[Any]], TEntity]:
        # The compiled constructor, unless the subclass builds entities its own way.
        if type(self)._row_to_entity is Repository._row_to_entity:
            return self._plan.make_entity
        return self._row_to_entity

    @functools.cached_property
    def _dialect(self) -> str:
        try:
            return str(self._session.get_bind(clause=self.table).dialect.name)
        except Exception:  # no single bind: the portable SQL is right everywhere
            return "default"

    @property
    def session(self) -> AsyncSession:
        return self._session

    async def _connection(self) -> AsyncConnection:
        """The session's connection in its current transaction (begun if none).

        Core statements run on it directly: the session's execute path, which a Core
        statement does not need (it autoflushes nothing for them), costs a third of a
        50-row page. The connection is kept while the session's innermost transaction is
        the same active one, and asked for again after a commit, a rollback, a close or on
        entering or leaving a savepoint.
        """
        # The innermost transaction: a savepoint (begin_nested) is only emitted when the
        # session hands out its connection inside it, so it must not be skipped.
        sync = self._session.sync_session
        transaction = sync.get_nested_transaction() or sync.get_transaction()
        held = self._held
        if (
            held is not None
            and transaction is not None
            and held[0] is transaction
            and transaction.is_active
        ):
            return held[1]
        conn = await self._session.connection(bind_arguments={"clause": self.table})
        self._held = (sync.get_nested_transaction() or sync.get_transaction(), conn)
        return conn

    async def _execute(self, stmt: Executable, params: Any = None) -> Any:
        conn = await self._connection()
        return await conn.execute(stmt, params)

    # ------------------------------------------------------------------ reads

    async def get(self, id: UUID, *, include_deleted: bool = False) -> Result[TEntity]:
        stmt, params = self._by_id("get", self._checked_id(id), include_deleted)
        row = (await self._execute(stmt, params)).first()
        if row is None:
            return Result.failure(self._not_found(id))
        entity = self._to_entity(row)
        self._track(entity)
        return Result.success(entity)

    async def exists(self, id: UUID, *, include_deleted: bool = False) -> bool:
        stmt, params = self._by_id("exists", self._checked_id(id), include_deleted)
        return (await self._execute(stmt, params)).first() is not None

    async def count(self, filters: Iterable[Filter] = (), *, include_deleted: bool = False) -> int:
        """The exact number of rows the filters match (in this tenant, live unless asked).

        An exact count reads every matching row (or index entry): O(rows) on PostgreSQL.
        """
        stmt, params, applied = self._listing(filters, include_deleted)
        count = self._count_statement(stmt, include_deleted, cached=not applied)
        return int((await self._execute(count, params)).scalar_one())

    async def list(
        self,
        pagination: OffsetPagination = OffsetPagination(),
        *,
        include_deleted: bool = False,
    ) -> OffsetPage[TEntity]:
        """One numbered page. ``total`` is None unless ``pagination.include_total`` asks for
        the exact ``COUNT`` (a second, O(rows) query); ``has_next`` is always known."""
        if not isinstance(pagination, OffsetPagination):
            raise InvalidQueryError(
                f"list takes an OffsetPagination, not {type(pagination).__name__}"
            )
        stmt, params, applied = self._listing(pagination.filters, include_deleted)
        spec = self._validated_sort(pagination.sort)
        total: int | None = None
        if pagination.include_total:
            count = self._count_statement(stmt, include_deleted, cached=not applied)
            total = int((await self._execute(count, params)).scalar_one())
        key = ("list", self._shape(include_deleted), spec)
        page_stmt = self._plan.statements.get(key) if not applied else None
        if page_stmt is None:
            columns = [self.table.c[k.field] for k in spec]
            page_stmt = (
                stmt.order_by(*keyset_order_by(columns, spec))
                .limit(bindparam(_LIMIT, type_=BigInteger))
                .offset(bindparam(_OFFSET, type_=BigInteger))
            )
            if not applied:
                self._plan.statements[key] = page_stmt
        params[_LIMIT] = pagination.page_size + 1
        params[_OFFSET] = pagination.offset
        rows = (await self._execute(page_stmt, params)).all()
        has_next = len(rows) > pagination.page_size
        make = self._to_entity
        items = [make(r) for r in rows[: pagination.page_size]]
        if self._tracker is not None:
            for item in items:
                self._track(item)
        return OffsetPage(
            items=items,
            page=pagination.page,
            page_size=pagination.page_size,
            total=total,
            has_next=has_next,
        )

    async def list_cursor(
        self,
        pagination: CursorPagination = CursorPagination(),
        *,
        include_deleted: bool = False,
    ) -> CursorPage[TEntity]:
        """One keyset page, with the allow-listed filters, tenant and soft-delete scoping.

        The cursor is bound to this table, the sort, the filters as applied and the scope
        (tenant, ``include_deleted``): any other listing refuses it with
        :class:`~qxdb.errors.CursorError` (``wrong_sort``). See ``docs/cursors.md``.
        """
        if not isinstance(pagination, CursorPagination):
            raise InvalidQueryError(
                f"list_cursor takes a CursorPagination, not {type(pagination).__name__}"
            )
        sort = self._validated_sort(pagination.sort)
        stmt, params, applied = self._listing(pagination.filters, include_deleted)
        tenant = self._tenant_id()
        scope = f"{self.table.fullname}|tenant={tenant or '*'}|deleted={include_deleted}"
        # The sort is order_spec'd already: the page starts from it.
        page = await _keyset_page(
            await self._connection(),
            stmt,
            self.table,
            validate_limit(pagination.limit),
            pagination.cursor,
            sort,
            applied,
            codec=self.cursor_codec,
            resource=scope,
            tiebreaker="id",
            params=params,
            # Without filters the base statement is built once: so are its pages.
            cache=None if applied else self._plan.keyset_cache(self._shape(include_deleted)),
        )
        make = self._to_entity
        items = [make(row) for row in page.items]
        if self._tracker is not None:
            for item in items:
                self._track(item)
        return CursorPage(
            items=items,
            next_cursor=page.next_cursor,
            previous_cursor=page.previous_cursor,
            has_next=page.has_next,
            has_previous=page.has_previous,
        )

    # ----------------------------------------------------------------- writes

    async def add(self, entity: TEntity) -> Result[TEntity]:
        """Insert a new row; fills ``created_at``/``created_by`` and the tenant.

        A taken id or unique value is a ``ConflictError`` failure (the transaction stays
        usable); it does not say whose row holds it.
        """
        values = self._insert_values(entity)
        try:
            result = await self._execute(self._insert_statement(), values)
        except IntegrityError as exc:
            raise self._constraint_error(exc) from None
        if self._dialect in ("postgresql", "sqlite") and _rowcount(result) == 0:
            return Result.failure(self._duplicate(entity.id))
        self._track(entity)
        return Result.success(entity)

    async def add_many(self, entities: Iterable[TEntity]) -> Result[builtins.list[TEntity]]:
        """Insert many rows in one statement, all or none: a duplicate among them is a
        ``ConflictError`` failure and none of them is written."""
        items = list(entities)
        if items:
            rows = [self._insert_values(e) for e in items]
            try:
                async with self._session.begin_nested():
                    await self._execute(self._plan.insert, rows)
            except IntegrityError as exc:
                if _is_unique_violation(exc):
                    return Result.failure(self._duplicate(None))
                raise self._constraint_error(exc) from None
            for entity in items:
                self._track(entity)
        return Result.success(items)

    async def save(self, entity: TEntity) -> Result[TEntity]:
        """Write the entity's changes if nobody else wrote the row since it was read.

        Returns a ``ConflictError`` failure when the row's version moved on (or a unique
        value is taken), and a ``NotFoundError`` failure when there is no such row (for
        this tenant). An entity of another tenant is refused with ``TenantScopeError``.
        """
        if not self._plan.has_version:
            raise ConfigurationError(f"{self._name}: save needs a 'version' column")
        ctx = current_context()
        tenant = self._tenant_id()
        entity_id = self._target_id(entity)
        expected = self._checked("version", entity.version)
        now = utcnow()
        values = self._entity_to_dict(entity)
        params = {
            _SET + k: self._checked(k, v)
            for k, v in values.items()
            if k not in _IMMUTABLE_ON_SAVE and k in self._plan.columns
        }
        params[_SET + "version"] = self._checked("version", expected + 1)
        for column, value in (("updated_at", now), ("updated_by", ctx.user_id)):
            if column in self._plan.columns:
                params[_SET + column] = value
        params[_ID] = entity_id
        params[_EXPECTED] = expected
        if tenant is not None:
            params[_TENANT] = tenant
        key = ("save", tenant is not None, *params)
        stmt = self._plan.statements.get(key)
        if stmt is None:
            stmt = self._plan.statements[key] = self._build_save(params, tenant is not None)
        try:
            if self._plan.has_unique:
                # A unique value taken by another row: a savepoint keeps the transaction
                # usable, so the failure is a Result like a version conflict.
                async with self._session.begin_nested():
                    result = await self._execute(stmt, params)
            else:
                result = await self._execute(stmt, params)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                return Result.failure(self._duplicate(entity_id))
            raise self._constraint_error(exc) from None
        if _rowcount(result) == 0:
            if await self.exists(entity_id, include_deleted=True):
                return Result.failure(self._conflict(entity_id, expected))
            return Result.failure(self._not_found(entity_id))
        entity.version = expected + 1
        entity.updated_at = now
        entity.updated_by = ctx.user_id
        self._track(entity)
        return Result.success(entity)

    async def soft_delete(
        self, target: UUID | TEntity, *, expected_version: int | None = None
    ) -> Result[None]:
        """Mark the row deleted (and bump its version); reads then skip it.

        ``target`` is an id or the entity (whose tenant must be the context's)."""
        ctx = current_context()
        return await self._set_deleted(
            self._target_id(target),
            expected_version,
            deleted=True,
            values={"deleted_by": ctx.user_id},
        )

    async def restore(
        self, target: UUID | TEntity, *, expected_version: int | None = None
    ) -> Result[None]:
        """Undo a soft delete (and bump the version); ``target`` is an id or the entity."""
        return await self._set_deleted(
            self._target_id(target), expected_version, deleted=False, values={"deleted_by": None}
        )

    async def hard_delete(self, target: UUID | TEntity) -> Result[None]:
        """Physically delete the row (deleted or not). Keep for erasure requests."""
        entity_id = self._target_id(target)
        stmt = delete(self.table).where(self.table.c.id == entity_id, *self._scope_clauses(True))
        try:
            result = await self._execute(stmt)
        except IntegrityError as exc:  # a foreign key still points at the row
            raise self._constraint_error(exc) from None
        if _rowcount(result) == 0:
            return Result.failure(self._not_found(entity_id))
        return Result.success(None)

    # ----------------------------------------------------------------- helpers

    def _by_id(
        self, kind: str, id: UUID, include_deleted: bool
    ) -> tuple[Executable, dict[str, Any]]:
        """A prepared, cached statement selecting one row by id, and its parameters.

        Built once per repository class and scope shape; only the values change, so
        SQLAlchemy's compiled cache is hit without rebuilding the statement each call.
        """
        tenant = self._tenant_id()
        key = (kind, tenant is not None, include_deleted)
        stmt = self._plan.statements.get(key)
        if stmt is None:
            c = self.table.c
            base = self._plan.select_all if kind == "get" else select(c.id).limit(1)
            clauses = [c.id == bindparam(_ID)]
            if tenant is not None:
                clauses.append(c.tenant_id == bindparam(_TENANT))
            if not include_deleted and self._plan.has_deletion:
                clauses.append(c.deleted_at.is_(None))
            stmt = self._plan.statements[key] = base.where(*clauses)
        params: dict[str, Any] = {_ID: id}
        if tenant is not None:
            params[_TENANT] = tenant
        return stmt, params

    def _insert_statement(self) -> Executable:
        """INSERT that skips a duplicate instead of failing (``ON CONFLICT DO NOTHING``),
        so a taken id or unique value costs no savepoint and aborts no transaction."""
        key = ("insert", self._dialect)
        stmt = self._plan.statements.get(key)
        if stmt is None:
            if self._dialect == "postgresql":
                stmt = postgresql.insert(self.table).on_conflict_do_nothing()
            elif self._dialect == "sqlite":
                stmt = sqlite.insert(self.table).on_conflict_do_nothing()
            else:
                stmt = self._plan.insert
            self._plan.statements[key] = stmt
        return stmt

    def _build_save(self, params: Mapping[str, Any], scoped: bool) -> Executable:
        c = self.table.c
        stmt = update(self.table).where(c.id == bindparam(_ID), c.version == bindparam(_EXPECTED))
        if scoped:
            stmt = stmt.where(c.tenant_id == bindparam(_TENANT))
        columns = [k[len(_SET) :] for k in params if k.startswith(_SET)]
        return stmt.values({name: bindparam(_SET + name) for name in columns})

    def _count_statement(
        self, stmt: Select[Any], include_deleted: bool, *, cached: bool
    ) -> Select[Any]:
        """``SELECT count(*)`` of the listing ``stmt`` (built once for an unfiltered one)."""
        key = ("count", *self._shape(include_deleted))
        count = self._plan.statements.get(key) if cached else None
        if count is None:
            count = stmt.with_only_columns(func.count()).order_by(None)
            if cached:
                self._plan.statements[key] = count
        return count

    def _shape(self, include_deleted: bool) -> tuple[bool, bool]:
        return (self._tenant_id() is not None, include_deleted)

    def _listing(
        self, filters: Iterable[Filter], include_deleted: bool
    ) -> tuple[Select[Any], dict[str, Any], tuple[Filter, ...]]:
        """The scoped, filtered SELECT of every column, its parameters, and the filters as
        applied (values normalised).

        The scoped statement is built once per scope shape (tenant bound as a parameter);
        only filters add clauses per call. The filters are consumed once, here, so a
        generator cannot be applied and then fingerprinted empty.
        """
        if not isinstance(include_deleted, bool):
            raise InvalidQueryError(
                f"include_deleted must be True or False, got {include_deleted!r}"
            )
        items = _filters(filters)
        tenant = self._tenant_id()
        key = ("scoped", tenant is not None, include_deleted)
        stmt = self._plan.statements.get(key)
        if stmt is None:
            c = self.table.c
            clauses: list[ColumnElement[bool]] = []
            if tenant is not None:
                clauses.append(c.tenant_id == bindparam(_TENANT))
            if not include_deleted and self._plan.has_deletion:
                clauses.append(c.deleted_at.is_(None))
            stmt = self._plan.statements[key] = self._plan.select_all.where(*clauses)
        params: dict[str, Any] = {} if tenant is None else {_TENANT: tenant}
        if not items:
            return stmt, params, ()
        conditions = [self._condition(f) for f in items]
        return (
            stmt.where(*(clause for clause, _ in conditions)),
            params,
            tuple(applied for _, applied in conditions),
        )

    def _scope_clauses(self, include_deleted: bool) -> builtins.list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        tenant = self._tenant_id()
        if tenant is not None:
            clauses.append(self.table.c.tenant_id == tenant)
        if not include_deleted and self._plan.has_deletion:
            clauses.append(self.table.c.deleted_at.is_(None))
        return clauses

    def _tenant_id(self) -> UUID | None:
        """The tenant every statement is scoped to; None when unscoped (global table or
        system scope). Raises :class:`TenantScopeError` when a tenant is needed and missing."""
        if not self.tenanted:
            return None
        ctx = current_context()
        if ctx.system:
            return None
        if ctx.tenant_id is None:
            raise TenantScopeError(
                f"{type(self).__name__} is tenanted and the request context has no tenant; "
                "set one with request_scope(tenant_id=...) or act across tenants "
                "explicitly inside system_scope()",
                code="tenant_scope.missing",
            )
        # The context holds a UUID (checked when it was made); the table's tenant column
        # must be able to hold it too, else a ValidationError rather than a driver error.
        try:
            tenant: UUID = self._plan.checkers["tenant_id"](ctx.tenant_id)
        except ValidationError as exc:
            raise ValidationError(
                f"{self._name} tenant_id column cannot hold the request context's tenant: "
                f"{exc.message}",
                details={"field": "tenant_id"},
            ) from None
        return tenant

    def _target_id(self, target: Any) -> UUID:
        """The id of ``target`` (an id or an entity), refusing another tenant's entity."""
        if isinstance(target, Entity):
            tenant = self._tenant_id()
            if tenant is not None and target.tenant_id is not None and target.tenant_id != tenant:
                raise TenantScopeError(
                    f"this {self._name} belongs to another tenant than the request context",
                    code="tenant_scope.mismatch",
                )
            target = target.id
        checked: UUID = self._checked_id(target)
        return checked

    def _checked_id(self, value: Any) -> Any:
        try:
            return self._plan.checkers["id"](value)
        except ValidationError as exc:
            raise InvalidQueryError(
                f"{self._name} id: {exc.message}", details={"field": "id"}
            ) from None

    def _checked(self, field: str, value: Any) -> Any:
        """A value the entity writes to column ``field``, checked against its type."""
        if value is None:
            if field in self._plan.required:
                raise ValidationError(
                    f"{self._name}.{field} cannot be None (the column is NOT NULL)",
                    details={"field": field},
                )
            return None
        try:
            return self._plan.write_checkers[field](value)
        except ValidationError as exc:
            raise ValidationError(
                f"{self._name}.{field}: {exc.message}", details={"field": field}
            ) from None

    def _condition(self, f: Filter) -> tuple[ColumnElement[bool], Filter]:
        """One filter, allow-listed and value-checked, as a bound SQL condition."""
        allowed = self.filterable_fields
        if f.field not in allowed:
            raise InvalidQueryError(
                f"field {f.field!r} is not filterable on {self._name} "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                details={"field": f.field, "allowed": sorted(allowed)},
            )
        col = self.table.c[f.field]
        op, value = f.op, f.value
        where = f"filter {f.field!r} {op}"

        def checked(v: Any) -> Any:
            try:
                return self._plan.checkers[f.field](v)
            except ValidationError as exc:
                raise InvalidQueryError(
                    f"{where}: {exc.message}", details={"field": f.field}
                ) from None

        if op in ("is_null", "is_not_null"):
            if value is not None and value is not True:
                raise InvalidQueryError(
                    f"{where} takes no value, got {value!r}", details={"field": f.field}
                )
            clause = col.is_(None) if op == "is_null" else col.is_not(None)
            return clause, f
        if op in _SCALAR_OPS:
            if value is None:
                hint = " (use is_null / is_not_null)" if op in ("eq", "neq") else ""
                raise InvalidQueryError(
                    f"{where} needs a value, got None{hint}", details={"field": f.field}
                )
            if isinstance(value, list | tuple | set | frozenset | Mapping):
                hint = " (use in / not_in)" if op in ("eq", "neq") else ""
                raise InvalidQueryError(
                    f"{where} needs a single value, got a {type(value).__name__}{hint}",
                    details={"field": f.field},
                )
            value = checked(value)
            # An explicit parameter: SQLAlchemy reads a bare True/False/None as an SQL
            # keyword, which only = and != accept (flag > False would not build).
            bound = bindparam(None, value, type_=col.type)
            return _SCALAR_OPS[op](col, bound), Filter(f.field, op, value)
        if op in ("in", "not_in"):
            if any(v is None for v in value):
                raise InvalidQueryError(
                    f"{where} cannot match None (use is_null / is_not_null)",
                    details={"field": f.field},
                )
            members = tuple(dict.fromkeys(checked(v) for v in value))
            return self._membership(col, members, op == "in"), Filter(f.field, op, members)
        # contains / starts_with / ends_with
        base = col.type.impl if isinstance(col.type, TypeDecorator) else col.type
        if not isinstance(base, String) or not comparable(col.type) or _is_enum(base):
            raise InvalidQueryError(f"{where} needs a text column", details={"field": f.field})
        try:
            text = check_text(value, getattr(base, "length", None))
        except ValidationError as exc:
            raise InvalidQueryError(f"{where}: {exc.message}", details={"field": f.field}) from None
        pattern = escape_like(text)
        pattern = {"contains": f"%{pattern}%", "starts_with": f"{pattern}%"}.get(op, f"%{pattern}")
        return col.ilike(pattern, escape=LIKE_ESCAPE), Filter(f.field, op, text)

    def _membership(
        self, col: Any, members: tuple[Any, ...], positive: bool
    ) -> ColumnElement[bool]:
        """``col IN members`` as ONE bound parameter, whatever the number of members.

        PostgreSQL: ``col = ANY(:array)`` / ``col <> ALL(:array)`` (asyncpg allows 32,767
        parameters per statement). SQLite: ``col IN (SELECT value FROM json_each(:json))``
        (SQLite allows 32,766). Both leave a NULL column out of ``not_in`` unless the list
        is empty, as SQL's ``NOT IN`` does.
        """
        if self._dialect == "postgresql" and not _is_enum(col.type):
            array = bindparam(None, list(members), type_=postgresql.ARRAY(col.type))
            return col == any_(array) if positive else col != all_(array)  # type: ignore[no-any-return]
        if self._dialect == "sqlite" and _json_listable(col.type):
            param = bindparam(None, list(members), type_=_JSONList(col.type))
            values = select(func.json_each(param).table_valued("value").c.value)
            return col.in_(values) if positive else col.not_in(values)  # type: ignore[no-any-return]
        return col.in_(members) if positive else col.not_in(members)  # type: ignore[no-any-return]

    def _validated_sort(self, sort: Sequence[Sort]) -> tuple[Sort, ...]:
        """The full sort (allow-list checked, then :func:`order_spec` applied)."""
        allowed = self.sortable_fields
        seen: set[str] = set()
        for s in sort:
            if not isinstance(s, Sort):
                raise InvalidQueryError(f"expected a Sort, got {type(s).__name__}")
            if s.field != "id" and s.field not in allowed:
                raise InvalidQueryError(
                    f"field {s.field!r} is not sortable on {self._name} "
                    f"(allowed: {', '.join(sorted({*allowed, 'id'}))})",
                    details={"field": s.field, "allowed": sorted({*allowed, "id"})},
                )
            if s.field in seen:
                raise InvalidQueryError(f"field {s.field!r} appears twice in the sort")
            seen.add(s.field)
        return order_spec(sort)

    def _row_to_entity(self, row: Any) -> TEntity:
        """Build the entity from a row (override for renamed or packed columns).

        ``row`` is an SQLAlchemy ``Row`` of every column of the table (``row._mapping``
        reads it by name). Without an override, a constructor compiled once per class is
        used instead of this method.
        """
        mapping: Any = row._mapping if isinstance(row, Row) else row
        entity: TEntity = self.entity_cls(**{k: mapping[k] for k in self._plan.field_columns})
        return entity

    def _entity_to_dict(self, entity: TEntity) -> dict[str, Any]:
        """The column values of the entity (override for non-trivial mappings)."""
        return {k: getattr(entity, k) for k in self._plan.field_columns}

    def _insert_values(self, entity: TEntity) -> dict[str, Any]:
        self._stamp_new(entity, current_context())
        values = self._entity_to_dict(entity)
        return {k: self._checked(k, v) if k in self._plan.columns else v for k, v in values.items()}

    def _stamp_new(self, entity: TEntity, ctx: RequestContext) -> None:
        """Give a new entity its tenant and creation audit values, refusing an entity of
        another tenant (the rules of ``add``, shared by ``add_many`` and ``upsert_many``)."""
        if not isinstance(entity, Entity):
            raise ValidationError(f"expected a {self._name}, got {type(entity).__name__}")
        if self.tenanted and ctx.system and entity.tenant_id is None:
            # A row of no tenant would be invisible to every tenant: refuse it.
            raise TenantScopeError(
                f"a {self._name} added in system scope must name its tenant_id",
                code="tenant_scope.missing",
            )
        if self.tenanted and not ctx.system:
            if ctx.tenant_id is None:
                self._tenant_id()  # raises the tenant error
            if entity.tenant_id is None:
                entity.tenant_id = ctx.tenant_id
            elif entity.tenant_id != ctx.tenant_id:
                raise TenantScopeError(
                    f"cannot add a {self._name} of another tenant in this request context",
                    code="tenant_scope.mismatch",
                )
        if entity.created_at is None:
            entity.created_at = utcnow()
        if entity.created_by is None:
            entity.created_by = ctx.user_id

    async def _set_deleted(
        self, id: UUID, expected_version: int | None, *, deleted: bool, values: dict[str, Any]
    ) -> Result[None]:
        if not self._plan.has_deletion:
            raise ConfigurationError(f"{self._name}: table has no 'deleted_at' column")
        if expected_version is not None:
            expected_version = self._checked("version", expected_version)
        ctx = current_context()
        now = utcnow()
        c = self.table.c
        stmt = update(self.table).where(
            c.id == id,
            c.deleted_at.is_(None) if deleted else c.deleted_at.is_not(None),
            *self._scope_clauses(True),
        )
        if expected_version is not None:
            stmt = stmt.where(c.version == expected_version)
        changes = {**values, "deleted_at": now if deleted else None}
        if self._plan.has_version:
            changes["version"] = c.version + 1
        if "updated_at" in c:
            changes["updated_at"] = now
        if "updated_by" in c:
            changes["updated_by"] = ctx.user_id
        try:
            if not deleted and self._plan.has_unique:
                # Restoring a row whose unique value was re-used meanwhile: a conflict.
                async with self._session.begin_nested():
                    result = await self._execute(stmt.values(changes))
            else:
                result = await self._execute(stmt.values(changes))
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                return Result.failure(self._duplicate(id))
            raise self._constraint_error(exc) from None
        if _rowcount(result) == 0:
            if expected_version is not None and await self.exists(id, include_deleted=True):
                return Result.failure(self._conflict(id, expected_version))
            state = "not found or already deleted" if deleted else "not found or not deleted"
            return Result.failure(self._not_found(id, state))
        return Result.success(None)

    def _track(self, entity: Entity) -> None:
        if self._tracker is not None and isinstance(entity, AggregateRoot):
            self._tracker.track(entity)

    def _not_found(self, id: UUID, state: str = "not found") -> NotFoundError:
        return NotFoundError(
            f"{self._name} {id} {state}",
            code=f"{self._name.lower()}.not_found",
            details={"id": str(id)},
        )

    def _conflict(self, id: UUID, expected: int) -> ConflictError:
        return ConflictError(
            f"{self._name} {id} was modified concurrently (expected version {expected})",
            code=f"{self._name.lower()}.version_conflict",
            details={"id": str(id), "version": expected},
        )

    def _duplicate(self, id: UUID | None) -> ConflictError:
        # Deliberately vague: which row holds the value (a deleted one, another tenant's)
        # is not the caller's to learn.
        subject = f"{self._name} {id}" if id is not None else f"a {self._name}"
        return ConflictError(
            f"{subject} cannot be written: its id or one of its unique values is already "
            "taken by a stored row (deleted rows keep their unique values)",
            code=f"{self._name.lower()}.duplicate",
            details={"id": str(id)} if id is not None else {},
        )

    def _constraint_error(self, exc: IntegrityError) -> ValidationError:
        name = _constraint_name(exc)
        where = f" ({name})" if name else ""
        return ValidationError(
            f"{self._name} violates a constraint of table {self.table.name!r}{where}; on "
            "PostgreSQL the transaction must now be rolled back",
            code=f"{self._name.lower()}.constraint",
            details={"constraint": name} if name else {},
        )

    # ------------------------------------------------------------ at scale
    # (implemented in qxdb.repository_bulk; see docs/repository.md)

    async def upsert_many(
        self,
        entities: Iterable[TEntity],
        *,
        on: Sequence[str] = ("id",),
        update: Iterable[str] | None = None,
    ) -> Result[builtins.list[TEntity]]:
        """Insert each entity, or update the row holding its ``on`` values (``ON CONFLICT
        DO UPDATE``), in chunks, all or none. ``update`` names the columns an update
        writes (default: every column of the entity outside identity, audit and ``on``);
        an update bumps ``version`` and stamps ``updated_at``/``updated_by``. A conflict
        with another tenant's row is refused (``ConflictError``, nothing written)."""
        from qxdb.repository_bulk import upsert_entities

        return await upsert_entities(self, entities, on, update)

    def stream(
        self,
        filters: Iterable[Filter] = (),
        sort: Sequence[Sort] = (),
        *,
        batch: int = 1_000,
        include_deleted: bool = False,
    ) -> AsyncIterator[TEntity]:
        """Every matching entity in ``sort`` order, ``batch`` rows per keyset query, in
        constant memory; tenant- and soft-delete-scoped like ``list``. Streamed entities
        are not tracked by the unit of work."""
        from qxdb.repository_bulk import stream_entities

        return stream_entities(self, filters, sort, batch, include_deleted)


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


def _driver_error(exc: IntegrityError) -> Any:
    orig = exc.orig
    return getattr(orig, "__cause__", None) or orig


def _is_unique_violation(exc: IntegrityError) -> bool:
    """23505 on PostgreSQL (asyncpg), ``UNIQUE constraint failed`` / PRIMARY KEY on SQLite."""
    for candidate in (exc.orig, _driver_error(exc)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code == "23505":
            return True
    text = str(exc.orig)
    return "UNIQUE constraint failed" in text or "PRIMARY KEY constraint failed" in text


def _constraint_name(exc: IntegrityError) -> str | None:
    name = getattr(_driver_error(exc), "constraint_name", None)
    return name if isinstance(name, str) else None


def _filters(filters: Any) -> tuple[Filter, ...]:
    if isinstance(filters, Filter | str | bytes | Mapping):
        raise InvalidQueryError("filters must be a list (or any iterable) of Filter")
    try:
        items = tuple(filters)
    except TypeError:
        raise InvalidQueryError("filters must be a list (or any iterable) of Filter") from None
    for item in items:
        if not isinstance(item, Filter):
            raise InvalidQueryError(f"expected a Filter, got {type(item).__name__}")
    return items


_SCALAR_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda c, v: c == v,
    "neq": lambda c, v: c != v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
}


def _is_enum(type_: Any) -> bool:
    from sqlalchemy import Enum

    base = type_.impl if isinstance(type_, TypeDecorator) else type_
    return isinstance(base, Enum)


def _json_listable(type_: Any) -> bool:
    from sqlalchemy import LargeBinary

    base = type_.impl if isinstance(type_, TypeDecorator) else type_
    return not isinstance(base, LargeBinary)


class _JSONList(TypeDecorator[Any]):
    """A list bound as one JSON text, each member first stored as its column stores it
    (UUID as 32 hex digits, datetime as text, ...), for SQLite's ``json_each``."""

    impl = String
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        processor = self.item_type.dialect_impl(dialect).bind_processor(dialect)
        items = [processor(v) if processor is not None else v for v in value]
        return json.dumps(items, default=str)
