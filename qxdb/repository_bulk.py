"""Repository at scale: ``upsert_many`` and ``stream`` (behind the ``Repository`` methods).

Both reuse the repository's own rules rather than restating them: values pass the column
checks of :mod:`qxdb.values` (through ``Repository._insert_values``), the tenant comes
from the request context (``Repository._tenant_id``), the scoped and filtered SELECT is
``Repository._listing``, and the ORDER BY and "rows after this one" predicates are those
of :mod:`qxdb.pagination` used by ``list_cursor``.

``upsert_many`` is one ``INSERT … ON CONFLICT (on) DO UPDATE … WHERE
<stored>.tenant_id = excluded.tenant_id RETURNING …`` per chunk, on PostgreSQL and SQLite
alike. The ``WHERE`` is the tenant wall: a conflict on another tenant's row updates
nothing, so the row comes back missing from ``RETURNING``, and the whole call is refused
and undone (a savepoint around every chunk).

``stream`` reads keyset batches: each batch is one short ``SELECT … WHERE (keys) >
(last keys) ORDER BY keys LIMIT batch``, so memory stays at one batch whatever the number
of rows, no server-side cursor or long statement is held open, and it works behind
PgBouncer in transaction mode.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError

from qxdb.context import current_context
from qxdb.domain import Entity
from qxdb.errors import ConflictError, InvalidQueryError, ValidationError
from qxdb.ids import utcnow
from qxdb.pagination import keyset_order_by, keyset_predicate
from qxdb.query import Filter, Sort
from qxdb.result import Result

if TYPE_CHECKING:
    from qxdb.repository import Repository

__all__ = [
    "DEFAULT_STREAM_BATCH",
    "MAX_BIND_PARAMETERS",
    "MAX_STREAM_BATCH",
    "stream_entities",
    "upsert_entities",
]

TEntity = TypeVar("TEntity", bound=Entity)

# Bound parameters one statement may carry: asyncpg allows 32,767 (a 16-bit count in the
# wire protocol), SQLite since 3.32 allows 32,766. A chunk stays under the smaller, with
# room to spare for the statement's own parameters.
MAX_BIND_PARAMETERS = 32_000
# Rows per statement: beyond about a thousand rows a statement gets no faster, and the
# statement text and its parameters only grow.
_MAX_CHUNK_ROWS = 1_000
_PG_CHUNK_ROWS = 10_000
DEFAULT_STREAM_BATCH = 1_000
MAX_STREAM_BATCH = 10_000
# Never written by the update half of an upsert: identity, history and deletion state.
_NEVER_UPDATED = frozenset(
    {"id", "tenant_id", "created_at", "created_by", "version", "deleted_at", "deleted_by"}
)
_LIMIT = "qx_stream_limit"


def chunk_rows(columns: int, limit: int = MAX_BIND_PARAMETERS) -> int:
    """How many rows of ``columns`` values one statement may carry under ``limit``."""
    return max(1, min(_MAX_CHUNK_ROWS, limit // max(1, columns)))


def _conflict_target(table: Table, on: Sequence[str], name: str) -> tuple[str, ...]:
    """``on``, checked: columns of the table that form its key or a unique rule."""
    if isinstance(on, str) or not on:
        raise InvalidQueryError(
            f"upsert_many on= takes a non-empty tuple of column names, got {on!r}"
        )
    columns = tuple(on)
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise InvalidQueryError(
            f"upsert_many on= names {unknown}, which are not columns of table {table.name!r}"
        )
    wanted = frozenset(columns)
    keys = [frozenset(c.key for c in table.primary_key.columns)]
    keys += [
        frozenset(c.key for c in con.columns)
        for con in table.constraints
        if isinstance(con, UniqueConstraint)
    ]
    keys += [
        frozenset(c.key for c in index.columns)
        for index in table.indexes
        # A partial or expression index cannot be an ON CONFLICT target by columns alone.
        if index.unique
        and index.dialect_kwargs.get("postgresql_where") is None
        and index.dialect_kwargs.get("sqlite_where") is None
        and len(index.columns) == len(index.expressions)
    ]
    if wanted not in keys:
        raise InvalidQueryError(
            f"upsert_many on={columns} must be the primary key or the columns of a unique "
            f"constraint or index of table {table.name!r} (ON CONFLICT needs one)",
            details={"on": list(columns)},
        )
    if len(set(columns)) != len(columns):
        raise InvalidQueryError(f"upsert_many on={columns} names a column twice")
    return columns


def _updated_columns(
    repo: Repository[Any], on: Sequence[str], update: Iterable[str] | None
) -> tuple[str, ...]:
    plan = repo._plan
    writable = [c for c in plan.field_columns if c not in _NEVER_UPDATED and c not in on]
    if update is None:
        return tuple(c for c in writable if c not in ("updated_at", "updated_by"))
    if isinstance(update, str):
        raise InvalidQueryError("upsert_many update= takes a list of column names, not a string")
    chosen = tuple(dict.fromkeys(update))
    refused = [c for c in chosen if c not in writable or c in ("updated_at", "updated_by")]
    if refused:
        raise InvalidQueryError(
            f"upsert_many update= names {refused}: only the entity's own columns outside "
            f"the conflict target and the identity/audit columns may be updated "
            f"(allowed: {', '.join(c for c in writable if not c.startswith('updated_'))})",
            details={"update": refused},
        )
    return chosen


def _upsert_statement(
    repo: Repository[Any],
    dialect: str,
    on: tuple[str, ...],
    update: tuple[str, ...],
    names: tuple[str, ...],
) -> tuple[Any, tuple[str, ...]]:
    """The cached ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` of one shape, and the
    names of the columns it returns.

    On PostgreSQL the rows arrive as one array per column, ``INSERT … SELECT * FROM
    unnest(:c0, :c1, …)``: one statement, compiled once, whatever the number of rows,
    with as many parameters as columns. (A multi-row VALUES is compiled anew for every
    chunk, 12 parameters a row, and costs more than the database's work; an executemany
    with RETURNING runs a statement per row.) SQLite gets the multi-row VALUES, chunked.
    """
    key = ("upsert", dialect, on, update, names)
    plan = repo._plan
    cached = plan.statements.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    table = repo.table
    c = table.c
    if dialect == "postgresql":
        arrays = [
            bindparam(_ARRAY.format(i), type_=postgresql.ARRAY(c[name].type))
            for i, name in enumerate(names)
        ]
        # AS rows(id, …): a multi-array unnest's columns are all called "unnest".
        rows = func.unnest(*arrays).table_valued(*names).render_derived(name="qx_rows")
        base: Any = postgresql.insert(table).from_select(list(names), select(rows))
    else:
        base = sqlite.insert(table)
    excluded = base.excluded
    changes: dict[str, Any] = {name: excluded[name] for name in update}
    if plan.has_version:
        changes["version"] = c.version + 1
    # The update half stamps its own audit values: "now" and the actor of this call, bound
    # once per statement (the inserted rows carry theirs in their values).
    if "updated_at" in c:
        changes["updated_at"] = bindparam("qx_upsert_now", type_=c.updated_at.type)
    if "updated_by" in c:
        changes["updated_by"] = bindparam("qx_upsert_by", type_=c.updated_by.type)
    # The tenant wall: another tenant's row is left alone (and so missing from RETURNING).
    where: ColumnElement[bool] | None = (
        c.tenant_id == excluded.tenant_id if "tenant_id" in c else None
    )
    if not changes:  # nothing to update: still touch the row so that it is returned
        changes = {on[0]: excluded[on[0]]}
    stmt = base.on_conflict_do_update(index_elements=list(on), set_=changes, where=where)
    returned = tuple(name for name in dict.fromkeys(("id", *on, *_AUDIT_RETURNED)) if name in c)
    stmt = stmt.returning(*(c[name] for name in returned))
    if dialect == "postgresql":
        # The stored state comes back as ONE row of arrays (one per column) instead of a
        # row per entity: 100k Records and Rows were most of the read-back's time and of
        # the garbage collector's work. Aggregates over the same rows keep one order.
        written = stmt.cte("qx_written")
        stmt = select(*(func.array_agg(written.c[name]).label(name) for name in returned))
    plan.statements[key] = (stmt, returned)
    return stmt, returned


_ARRAY = "qx_upsert_{}"
_AUDIT_RETURNED = ("version", "created_at", "created_by", "updated_at", "updated_by")


async def upsert_entities(
    repo: Repository[TEntity],
    entities: Iterable[TEntity],
    on: Sequence[str],
    update: Iterable[str] | None,
) -> Result[builtins.list[TEntity]]:
    """Insert each entity, or update the stored row that holds its ``on`` values."""
    items = builtins.list(entities)
    table = repo.table
    target = _conflict_target(table, on, repo._name)
    updated = _updated_columns(repo, target, update)
    if not items:
        return Result.success(items)
    dialect = repo._dialect
    if dialect not in ("postgresql", "sqlite"):
        raise InvalidQueryError(f"upsert_many needs PostgreSQL or SQLite, not {dialect}")
    # The rules of add(): the tenant stamped (another tenant's entity refused), the
    # creation audit values, and every value checked against its column; column by
    # column, with no dictionary per row (see _column_values).
    names, columns = _column_values(repo, items)
    # A one-column target (the usual case) keys by the value itself: a tuple per row, in
    # two dictionaries of 100k rows, is garbage-collector work for nothing.
    keys: builtins.list[Any] = (
        columns[target[0]]
        if len(target) == 1
        else builtins.list(zip(*(columns[name] for name in target), strict=True))
    )
    by_key: dict[Any, int] = {}
    for i, k in enumerate(keys):
        if k is None or (len(target) > 1 and any(v is None for v in k)):
            raise InvalidQueryError(
                f"upsert_many: {repo._name} #{i} has no value for {list(target)} "
                "(a NULL never conflicts, so it could only insert)",
                details={"index": i},
            )
        if by_key.setdefault(k, i) != i:
            # PostgreSQL refuses to update one row twice in a statement; SQLite would let
            # the last win. Refuse it on both, before any SQL.
            raise InvalidQueryError(
                f"upsert_many: {repo._name} #{by_key[k]} and #{i} have the same "
                f"{list(target)}; pass each row once",
                details={"index": i, "first": by_key[k]},
            )
    stmt, returned_names = _upsert_statement(repo, dialect, target, updated, names)
    ctx = current_context()
    extra: dict[str, Any] = {}
    if "updated_at" in table.c:
        extra["qx_upsert_now"] = utcnow()
    if "updated_by" in table.c:
        extra["qx_upsert_by"] = ctx.user_id
    # PostgreSQL: one array per column whatever the rows, so a chunk only bounds the
    # memory of one statement; SQLite: a row's values each count against its limit.
    size = _PG_CHUNK_ROWS if dialect == "postgresql" else chunk_rows(len(names) + len(extra))
    # The stored state, one list per returned column, in the order the rows came back.
    read: dict[str, builtins.list[Any]] = {name: [] for name in returned_names}
    session = repo.session
    try:
        async with session.begin_nested():
            for start in range(0, len(items), size):
                end = start + size
                if dialect == "postgresql":
                    params = {
                        _ARRAY.format(i): columns[name][start:end] for i, name in enumerate(names)
                    }
                    arrays = (await session.execute(stmt, {**params, **extra})).one()
                    for name, values in zip(returned_names, arrays, strict=True):
                        read[name].extend(values or ())  # no row written: NULL
                else:
                    chunk = [
                        dict(zip(names, row, strict=True))
                        for row in zip(*(columns[name][start:end] for name in names), strict=True)
                    ]
                    batch = (await session.execute(stmt.values(chunk), extra)).all()
                    for i, name in enumerate(returned_names):
                        read[name].extend(r[i] for r in batch)
                if len(read["id"]) != min(end, len(items)):
                    # Only the tenant WHERE skips a row: refuse the whole call (the
                    # savepoint undoes the chunks already written) without saying whose
                    # row it is.
                    raise _Refused
    except IntegrityError as exc:
        from qxdb.repository import _is_unique_violation

        if _is_unique_violation(exc):
            return Result.failure(repo._duplicate(None))
        raise repo._constraint_error(exc) from None
    except (_Refused, DBAPIError) as exc:
        # With PostgreSQL row-level security on (qxdb.rls), the database refuses the
        # update of another tenant's row itself (42501) before our WHERE can skip it.
        if isinstance(exc, DBAPIError) and not _rls_refusal(exc):
            raise
        return Result.failure(
            ConflictError(
                f"upsert_many refused: a {repo._name} among them conflicts on "
                f"{list(target)} with a row this request context may not update "
                "(nothing was written)",
                code="tenant_scope.mismatch",
                details={"on": list(target)},
            )
        )
    # RETURNING gives the stored state: the stored id (when the conflict was on another
    # unique key), version, creation and update audit values.
    # (tenant_id is not read back: the tenant WHERE makes the stored one the entity's.)
    stored_keys = (
        read[target[0]] if len(target) == 1 else zip(*(read[name] for name in target), strict=True)
    )
    stored = {k: j for j, k in enumerate(stored_keys)}
    copied = [(name, read[name]) for name in ("id", *_AUDIT_RETURNED) if name in read]
    for entity, k in zip(items, keys, strict=True):
        j = stored.get(k)
        if j is None:  # a value the database normalises differently: keep the entity's
            continue
        for name, values in copied:
            setattr(entity, name, values[j])
        repo._track(entity)
    return Result.success(items)


_UNSET: Any = object()


def _column_values(
    repo: Repository[Any], items: Sequence[Any]
) -> tuple[tuple[str, ...], dict[str, builtins.list[Any]]]:
    """Each column's checked values for ``items`` (stamped as ``add`` stamps them), one
    list per column.

    The check of a column runs once per distinct value object: a run of the same object
    (the tenant stamped from the context, a shared ``created_by``, a constant) is checked
    once, as the check is a pure function of the value. A subclass that maps entities
    its own way (``_entity_to_dict`` or ``_insert_values`` overridden) goes through
    ``_insert_values`` row by row.
    """
    from qxdb.repository import Repository

    cls = type(repo)
    if (
        cls._entity_to_dict is not Repository._entity_to_dict
        or cls._insert_values is not Repository._insert_values
    ):
        rows = [repo._insert_values(e) for e in items]
        names = tuple(rows[0])
        return names, {name: [row[name] for row in rows] for name in names}
    ctx = current_context()
    for entity in items:
        repo._stamp_new(entity, ctx)
    plan = repo._plan
    names = plan.field_columns
    columns: dict[str, builtins.list[Any]] = {}
    for name in names:
        values = [getattr(entity, name) for entity in items]
        check = plan.write_checkers[name]
        required = name in plan.required
        last_in = last_out = _UNSET
        for i, value in enumerate(values):
            if value is last_in:
                values[i] = last_out
                continue
            if value is None and not required:
                out = None
            elif value is None:
                out = repo._checked(name, value)  # raises the NOT NULL error
            else:
                try:
                    out = check(value)
                except ValidationError:
                    out = repo._checked(name, value)  # raises it, naming the field
            values[i] = out
            last_in, last_out = value, out
        columns[name] = values
    return names, columns


def _rls_refusal(exc: DBAPIError) -> bool:
    # asyncpg's own exception (with the SQLSTATE) is the cause of SQLAlchemy's wrapper.
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if getattr(candidate, "sqlstate", None) == "42501" and "row-level security" in str(
            candidate
        ):
            return True
    return False


class _Refused(Exception):
    """A row of the chunk was skipped by the tenant wall."""


def stream_entities(
    repo: Repository[TEntity],
    filters: Iterable[Filter],
    sort: Sequence[Sort],
    batch: int,
    include_deleted: bool,
) -> AsyncIterator[TEntity]:
    """Every entity the filters match, in ``sort`` order, ``batch`` rows per query.

    Everything is checked, and the tenant resolved, at the call: a bad filter fails where
    the stream is asked for, not at its first ``async for``.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_STREAM_BATCH:
        raise InvalidQueryError(
            f"stream batch must be an integer from 1 to {MAX_STREAM_BATCH}, got {batch!r}"
        )
    spec = repo._validated_sort(sort)
    base, params, _ = repo._listing(filters, include_deleted)
    columns = [repo.table.c[k.field] for k in spec]
    first = base.order_by(*keyset_order_by(columns, spec)).limit(
        bindparam(_LIMIT, type_=BigInteger)
    )
    positions = [base.selected_columns.keys().index(k.field) for k in spec]
    return _batches(repo, first, {**params, _LIMIT: batch}, columns, spec, positions, batch)


async def _batches(
    repo: Repository[TEntity],
    first: Select[Any],
    params: dict[str, Any],
    columns: Sequence[ColumnElement[Any]],
    spec: Sequence[Sort],
    positions: Sequence[int],
    batch: int,
) -> AsyncIterator[TEntity]:
    make = repo._to_entity
    last: list[Any] | None = None
    while True:
        stmt = first if last is None else first.where(keyset_predicate(columns, spec, last))
        rows = (await repo.session.execute(stmt, params)).all()
        for row in rows:
            # Not tracked by the unit of work: holding every streamed aggregate until
            # commit is the memory a stream exists to avoid (use get/list to change one).
            yield make(row)
        if len(rows) < batch:
            return
        last = [rows[-1][p] for p in positions]
