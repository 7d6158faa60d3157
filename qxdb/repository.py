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
- **One ORDER BY policy** (:func:`qxdb.query.order_spec`): the ``id`` tiebreaker follows the
  last key, NULL placement is explicit, so SQLite and PostgreSQL order alike and keyset
  cursors can rely on it.
- **Optimistic concurrency.** ``save`` updates ``WHERE id = ? AND version = ?`` and bumps
  ``version``, ``updated_at``, ``updated_by``; a mismatch is a ``ConflictError`` failure.
  ``soft_delete`` and ``restore`` bump them too. ``save`` never writes ``id``,
  ``tenant_id``, ``created_at``, ``created_by`` (nor the deletion columns).
- **Tenancy fails closed.** On a tenanted repository every read and write is scoped to the
  tenant of the current :class:`~qxdb.context.RequestContext`; with no tenant the call
  raises :class:`~qxdb.errors.TenantScopeError`, unless the caller entered
  :func:`~qxdb.context.system_scope`. Another tenant's row looks exactly like a missing one.
- **The unit of work hears about aggregates.** Given a tracker (the unit of work's
  operation), ``get``, ``list``, ``add``, ``add_many`` and ``save`` hand it every aggregate,
  so their events are drained on commit.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import UnaryExpression

from qxdb.context import current_context
from qxdb.cursor import CursorCodec
from qxdb.domain import AggregateRoot, Entity
from qxdb.errors import (
    ConfigurationError,
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    TenantScopeError,
)
from qxdb.ids import utcnow
from qxdb.pagination import fetch_cursor_page
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

__all__ = ["AggregateTracker", "Repository", "escape_like"]

TEntity = TypeVar("TEntity", bound=Entity)

LIKE_ESCAPE = "\\"
# Names of the bound parameters of prepared statements (prefixed: a bind parameter may not
# share a column's name in an UPDATE's SET clause).
_ID, _TENANT, _EXPECTED, _SET = "qx_id", "qx_tenant", "qx_expected", "qx_set_"
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


class _Plan:
    """What a repository class needs to know about its table, computed once per class."""

    __slots__ = (
        "columns",
        "field_columns",
        "has_deletion",
        "has_version",
        "insert",
        "statements",
    )

    def __init__(self, repo: type[Repository[Any]], table: Table) -> None:
        name = repo.__name__
        entity_cls = getattr(repo, "entity_cls", None)
        if entity_cls is None:
            raise ConfigurationError(f"{name} has no entity_cls")
        columns = set(table.c.keys())
        if "id" not in columns:
            raise ConfigurationError(f"{name}: table {table.name!r} has no 'id' column")
        if dataclasses.is_dataclass(entity_cls):
            fields = [f.name for f in dataclasses.fields(entity_cls) if f.init]
            self.field_columns: tuple[str, ...] = tuple(f for f in fields if f in columns)
        else:
            self.field_columns = tuple(table.c.keys())
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
        self.insert: Executable = insert(table)
        self.statements: dict[tuple[Any, ...], Executable] = {}


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

    @functools.cached_property
    def _plan(self) -> _Plan:
        # Computed on first use, so ``table`` may also be set on the instance after
        # construction; shared by every instance of the class for the same table.
        key = (type(self), self.table)
        plan = _plans.get(key)
        if plan is None:
            plan = _plans[key] = _Plan(type(self), self.table)
        return plan

    @property
    def session(self) -> AsyncSession:
        return self._session

    # ------------------------------------------------------------------ reads

    async def get(self, id: UUID, *, include_deleted: bool = False) -> Result[TEntity]:
        stmt, params = self._by_id("get", id, include_deleted)
        row = (await self._session.execute(stmt, params)).first()
        if row is None:
            return Result.failure(self._not_found(id))
        entity = self._row_to_entity(row)
        self._track(entity)
        return Result.success(entity)

    async def exists(self, id: UUID, *, include_deleted: bool = False) -> bool:
        stmt, params = self._by_id("exists", id, include_deleted)
        return (await self._session.execute(stmt, params)).first() is not None

    async def list(
        self,
        pagination: OffsetPagination = OffsetPagination(),
        *,
        include_deleted: bool = False,
    ) -> OffsetPage[TEntity]:
        """One page; ``pagination.include_total=False`` skips the ``COUNT`` query."""
        where = [*self._scope_clauses(include_deleted), *self._filter_clauses(pagination.filters)]
        order = self._order_by(self._validated_sort(pagination.sort))
        total: int | None = None
        if pagination.include_total:
            count = select(func.count()).select_from(self.table).where(*where)
            total = int((await self._session.execute(count)).scalar_one())
        stmt = (
            select(self.table)
            .where(*where)
            .order_by(*order)
            .limit(pagination.page_size + 1)
            .offset(pagination.offset)
        )
        rows = (await self._session.execute(stmt)).all()
        has_next = len(rows) > pagination.page_size
        items = [self._row_to_entity(r) for r in rows[: pagination.page_size]]
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

        The cursor is bound to this table, the sort, the filters and the scope (tenant,
        ``include_deleted``): any other listing refuses it with
        :class:`~qxdb.errors.CursorError` (``wrong_sort``). See ``docs/cursors.md``.
        """
        sort = self._validated_sort(pagination.sort)
        where = [*self._scope_clauses(include_deleted), *self._filter_clauses(pagination.filters)]
        tenant = self._tenant_id()
        scope = f"{self.table.fullname}|tenant={tenant or '*'}|deleted={include_deleted}"
        page = await fetch_cursor_page(
            self._session,
            select(self.table).where(*where),
            self.table,
            dataclasses.replace(pagination, sort=sort),
            codec=self.cursor_codec,
            resource=scope,
        )
        items = [self._row_to_entity(row) for row in page.items]
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
        """Insert a new row; fills ``created_at``/``created_by`` and the tenant."""
        values = self._insert_values(entity)
        await self._session.execute(self._plan.insert, values)
        self._track(entity)
        return Result.success(entity)

    async def add_many(self, entities: Sequence[TEntity]) -> Result[builtins.list[TEntity]]:
        """Insert many rows with one statement."""
        items = list(entities)
        if items:
            rows = [self._insert_values(e) for e in items]
            await self._session.execute(self._plan.insert, rows)
            for entity in items:
                self._track(entity)
        return Result.success(items)

    async def save(self, entity: TEntity) -> Result[TEntity]:
        """Write the entity's changes if nobody else wrote the row since it was read.

        Returns a ``ConflictError`` failure when the row's version moved on, and a
        ``NotFoundError`` failure when there is no such row (for this tenant).
        """
        if not self._plan.has_version:
            raise ConfigurationError(f"{self._name}: save needs a 'version' column")
        ctx = current_context()
        tenant = self._tenant_id()
        expected = entity.version
        now = utcnow()
        values = self._entity_to_dict(entity)
        params = {_SET + k: v for k, v in values.items() if k not in _IMMUTABLE_ON_SAVE}
        params[_SET + "version"] = expected + 1
        for column, value in (("updated_at", now), ("updated_by", ctx.user_id)):
            if column in self._plan.columns:
                params[_SET + column] = value
        params[_ID] = entity.id
        params[_EXPECTED] = expected
        if tenant is not None:
            params[_TENANT] = tenant
        key = ("save", tenant is not None, *params)
        stmt = self._plan.statements.get(key)
        if stmt is None:
            stmt = self._plan.statements[key] = self._build_save(params, tenant is not None)
        result = await self._session.execute(stmt, params)
        if _rowcount(result) == 0:
            if await self.exists(entity.id, include_deleted=True):
                return Result.failure(self._conflict(entity.id, expected))
            return Result.failure(self._not_found(entity.id))
        entity.version = expected + 1
        entity.updated_at = now
        entity.updated_by = ctx.user_id
        self._track(entity)
        return Result.success(entity)

    async def soft_delete(self, id: UUID, *, expected_version: int | None = None) -> Result[None]:
        """Mark the row deleted (and bump its version); reads then skip it."""
        ctx = current_context()
        return await self._set_deleted(
            id, expected_version, deleted=True, values={"deleted_by": ctx.user_id}
        )

    async def restore(self, id: UUID, *, expected_version: int | None = None) -> Result[None]:
        """Undo a soft delete (and bump the version)."""
        return await self._set_deleted(
            id, expected_version, deleted=False, values={"deleted_by": None}
        )

    async def hard_delete(self, id: UUID) -> Result[None]:
        """Physically delete the row (deleted or not). Keep for erasure requests."""
        stmt = delete(self.table).where(self.table.c.id == id, *self._scope_clauses(True))
        if _rowcount(await self._session.execute(stmt)) == 0:
            return Result.failure(self._not_found(id))
        return Result.success(None)

    # ------------------------------------------- helpers (also for pagination)

    def _scoped_select(self, include_deleted: bool) -> Select[Any]:
        """``SELECT`` of every column, scoped to the tenant and (unless asked) live rows.

        The base of every listing: keyset pagination adds its predicates and order to it.
        Raises :class:`TenantScopeError` when a tenanted repository has no tenant.
        """
        return select(self.table).where(*self._scope_clauses(include_deleted))

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
            base = select(self.table) if kind == "get" else select(c.id).limit(1)
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

    def _build_save(self, params: Mapping[str, Any], scoped: bool) -> Executable:
        c = self.table.c
        stmt = update(self.table).where(c.id == bindparam(_ID), c.version == bindparam(_EXPECTED))
        if scoped:
            stmt = stmt.where(c.tenant_id == bindparam(_TENANT))
        columns = [k[len(_SET) :] for k in params if k.startswith(_SET)]
        return stmt.values({name: bindparam(_SET + name) for name in columns})

    def _scope_clauses(self, include_deleted: bool) -> builtins.list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        tenant = self._tenant_clause()
        if tenant is not None:
            clauses.append(tenant)
        if not include_deleted and self._plan.has_deletion:
            clauses.append(self.table.c.deleted_at.is_(None))
        return clauses

    def _tenant_clause(self) -> ColumnElement[bool] | None:
        tenant = self._tenant_id()
        return None if tenant is None else self.table.c.tenant_id == tenant

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
        return ctx.tenant_id

    def _filter_clauses(self, filters: Sequence[Filter]) -> builtins.list[ColumnElement[bool]]:
        """Validated WHERE clauses for ``filters`` (allow-list, operator and value checked)."""
        allowed = self.filterable_fields
        clauses: list[ColumnElement[bool]] = []
        for f in filters:
            if not isinstance(f, Filter):
                raise InvalidQueryError(f"expected a Filter, got {type(f).__name__}")
            if f.field not in allowed:
                raise InvalidQueryError(
                    f"field {f.field!r} is not filterable on {self._name} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})",
                    details={"field": f.field, "allowed": sorted(allowed)},
                )
            clauses.append(_condition(self.table.c[f.field], f))
        return clauses

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

    def _order_by(self, spec: Sequence[Sort]) -> builtins.list[UnaryExpression[Any]]:
        """ORDER BY terms with explicit NULL placement (the same on both dialects)."""
        terms: list[UnaryExpression[Any]] = []
        for s in spec:
            col = self.table.c[s.field]
            term = col.desc() if s.direction == "desc" else col.asc()
            terms.append(term.nulls_first() if s.effective_nulls == "first" else term.nulls_last())
        return terms

    def _row_to_entity(self, row: Any) -> TEntity:
        """Build the entity from a row (override for renamed or packed columns)."""
        mapping: Mapping[str, Any] = row._mapping if hasattr(row, "_mapping") else row
        entity: TEntity = self.entity_cls(**{k: mapping[k] for k in self._plan.field_columns})
        return entity

    def _entity_to_dict(self, entity: TEntity) -> dict[str, Any]:
        """The column values of the entity (override for non-trivial mappings)."""
        return {k: getattr(entity, k) for k in self._plan.field_columns}

    def _insert_values(self, entity: TEntity) -> dict[str, Any]:
        ctx = current_context()
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
        return self._entity_to_dict(entity)

    async def _set_deleted(
        self, id: UUID, expected_version: int | None, *, deleted: bool, values: dict[str, Any]
    ) -> Result[None]:
        if not self._plan.has_deletion:
            raise ConfigurationError(f"{self._name}: table has no 'deleted_at' column")
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
        if _rowcount(await self._session.execute(stmt.values(changes))) == 0:
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


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


_SCALAR_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte"})
_LIKE_OPS = frozenset({"contains", "starts_with", "ends_with"})


def _is_collection(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def _refuse_naive(col: Any, where: str, values: Iterable[Any]) -> None:
    # A timezone-aware column refuses a naive datetime only when the statement runs, as
    # an SQLAlchemy StatementError; a bad filter value is the caller's error: say so here.
    if not getattr(getattr(col.type, "impl", col.type), "timezone", False):
        return
    for v in values:
        if isinstance(v, datetime) and (v.tzinfo is None or v.utcoffset() is None):
            raise InvalidQueryError(
                f"{where} got the naive datetime {v.isoformat()}: give it a timezone (e.g. UTC)"
            )


def _condition(col: Any, f: Filter) -> ColumnElement[bool]:
    """One filter as a bound SQL condition, after checking the operator fits the value."""
    op, value = f.op, f.value
    where = f"filter {f.field!r} {op}"
    _refuse_naive(col, where, value if _is_collection(value) else (value,))
    if op in _SCALAR_OPS:
        if value is None:
            hint = " (use is_null / is_not_null)" if op in ("eq", "neq") else ""
            raise InvalidQueryError(f"{where} needs a value, got None{hint}")
        if _is_collection(value) or isinstance(value, Mapping):
            hint = " (use in / not_in)" if op in ("eq", "neq") else ""
            raise InvalidQueryError(
                f"{where} needs a single value, got a {type(value).__name__}{hint}"
            )
        if op == "eq":
            return col == value  # type: ignore[no-any-return]
        if op == "neq":
            return col != value  # type: ignore[no-any-return]
        if op == "gt":
            return col > value  # type: ignore[no-any-return]
        if op == "gte":
            return col >= value  # type: ignore[no-any-return]
        if op == "lt":
            return col < value  # type: ignore[no-any-return]
        return col <= value  # type: ignore[no-any-return]
    if op in ("in", "not_in"):
        if not _is_collection(value):
            raise InvalidQueryError(
                f"{where} needs a list, tuple or set of values, got {type(value).__name__}"
            )
        if any(v is None for v in value):
            raise InvalidQueryError(f"{where} cannot match None (use is_null / is_not_null)")
        members = list(value)
        return col.in_(members) if op == "in" else col.not_in(members)  # type: ignore[no-any-return]
    if op in _LIKE_OPS:
        if not isinstance(value, str):
            raise InvalidQueryError(f"{where} needs a string, got {type(value).__name__}")
        if not isinstance(col.type, String):
            raise InvalidQueryError(f"{where} needs a text column")
        text = escape_like(value)
        pattern = {"contains": f"%{text}%", "starts_with": f"{text}%"}.get(op, f"%{text}")
        return col.ilike(pattern, escape=LIKE_ESCAPE)  # type: ignore[no-any-return]
    # is_null / is_not_null
    if value is not None and value is not True:
        raise InvalidQueryError(f"{where} takes no value, got {value!r}")
    return col.is_(None) if op == "is_null" else col.is_not(None)  # type: ignore[no-any-return]
