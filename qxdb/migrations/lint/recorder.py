"""Run a revision's ``upgrade()`` offline and record what it does.

Alembic's ``op`` proxy is pointed at a recording :class:`~alembic.operations.Operations`
subclass on an offline PostgreSQL :class:`~alembic.runtime.migration.MigrationContext`.
Every operation reaches :meth:`_Recorder.invoke` as Alembic's own operation object
(``CreateIndexOp``, ``AlterColumnOp``, ``ExecuteSQLOp`` …), which is turned into
:class:`~.actions.Action` values together with the line of the revision file that called
it. Nothing runs against a database; with ``emit_sql`` the operations are also rendered
as Alembic's offline (``--sql``) SQL, which is what external linters such as squawk read.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

from alembic import context as alembic_context, op as alembic_op
from alembic.operations import Operations, ops
from alembic.operations.base import BatchOperations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    UniqueConstraint as SAUnique,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ClauseElement

from qxdb.migrations.lint.actions import Action, ColumnInfo, table_key
from qxdb.migrations.lint.sql import normalize_type, read_sql

__all__ = ["OfflineReadError", "Recording", "record_upgrade"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


class OfflineReadError(RuntimeError):
    """A revision tried to read rows from the database while being linted offline."""


@dataclass(slots=True)
class Recording:
    actions: list[Action] = field(default_factory=list)
    sql: str = ""
    # Set when upgrade() raised: what stopped the recording, and where.
    failure: str | None = None
    failure_line: int = 0


class _Rows:
    """What a recorded ``bind.execute()`` returns: no rows can be read offline."""

    def __getattr__(self, name: str) -> Any:
        raise OfflineReadError(
            f"the revision reads query results (.{name}) from op.get_bind(), "
            "which cannot be known offline"
        )


class _RecordingBind:
    """Stands in for ``op.get_bind()``: statements are recorded, results cannot be read."""

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder
        self.dialect = _DIALECT

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> _Rows:
        self._recorder.record_sql(statement)
        return _Rows()

    def exec_driver_sql(self, statement: str, *args: Any, **kwargs: Any) -> _Rows:
        self._recorder.record_sql(statement)
        return _Rows()


def _type_text(type_: Any) -> str:
    if type_ is None:
        return ""
    if isinstance(type_, type):  # alter_column(type_=sa.BigInteger): the class, not an instance
        type_ = type_()
    try:
        return normalize_type(type_.compile(dialect=_DIALECT))
    except Exception:  # a type PostgreSQL cannot render: keep its name
        return normalize_type(type(type_).__name__)


def _default_text(default: Any) -> str | None:
    if default is None or default is False:
        return None
    arg = getattr(default, "arg", default)
    if isinstance(arg, str):
        return repr(arg)  # a plain string default is a quoted literal
    if isinstance(arg, ClauseElement):
        try:
            return str(arg.compile(dialect=_DIALECT))
        except Exception:  # a construct PostgreSQL cannot render
            return str(arg)
    return str(arg)


def _column(column: Column[Any], *, pk: bool = False) -> ColumnInfo:
    # Filled row by row when added to a table with rows: identity, serial, computed.
    identity = (
        column.identity is not None
        or column.computed is not None
        or (column.primary_key and column.autoincrement is True)
    )
    if column.default is not None and getattr(column.default, "is_sequence", False):
        identity = True
    return ColumnInfo(
        name=str(column.name),
        type_text=_type_text(column.type),
        primary_key=bool(column.primary_key or pk),
        nullable=bool(column.nullable) and not (column.primary_key or pk),
        default_text=_default_text(column.server_default),
        identity=identity,
        foreign_key=bool(column.foreign_keys),
    )


def _sql_text(statement: Any) -> str:
    if isinstance(statement, str):
        return statement
    if isinstance(statement, ClauseElement):
        try:
            return str(statement.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))
        except Exception:  # bound values that cannot be inlined: keep placeholders
            return str(statement.compile(dialect=_DIALECT))
    return str(statement)


class _Recorder(Operations):
    def __init__(self, context: MigrationContext, *, emit_sql: bool) -> None:
        super().__init__(context)
        self.emit_sql = emit_sql
        self.path = self._basename = self._real = ""
        self.actions: list[Action] = []
        self.autocommit_depth = 0
        self._bind = _RecordingBind(self)

    # -- where the revision called us --------------------------------------------------

    def line(self) -> int:
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            if name == self.path or (
                name.endswith(self._basename) and os.path.realpath(name) == self._real
            ):
                return frame.f_lineno
            frame = frame.f_back
        return 0

    def start(self, path: str) -> None:
        self.path = path
        self._basename = os.path.basename(path)
        self._real = os.path.realpath(path)

    # -- the ``op`` proxy -----------------------------------------------------------------

    def _install_proxy(self) -> None:
        # Alembic keys its module proxies by class; ``alembic.op`` is registered for
        # Operations, so install this subclass in its place.
        attr_names, modules = self._setups[Operations]
        for globals_, _locals in modules:
            globals_["_proxy"] = self
            for attr_name in attr_names:
                globals_[attr_name] = getattr(self, attr_name)

    def _remove_proxy(self) -> None:
        attr_names, modules = self._setups[Operations]
        for globals_, _locals in modules:
            globals_["_proxy"] = None
            for attr_name in attr_names:
                globals_.pop(attr_name, None)

    # -- what Alembic calls --------------------------------------------------------------

    def get_bind(self) -> Any:
        return self._bind

    def invoke(self, operation: ops.MigrateOperation) -> Any:
        self.actions.extend(self._actions(operation, self.line()))
        if self.emit_sql:
            try:
                return super().invoke(operation)
            except Exception:  # rendering is a courtesy; the recording is what counts
                pass
        if isinstance(operation, ops.CreateTableOp):
            return operation.to_table(self.migration_context)
        return None

    @contextmanager
    def batch_alter_table(self, table_name: str, *args: Any, **kw: Any) -> Iterator[Any]:
        # On PostgreSQL batch mode issues plain ALTERs; record its operations like any other.
        from alembic.operations import batch

        impl = batch.BatchOperationsImpl(  # type: ignore[no-untyped-call]
            self, table_name, kw.get("schema"), "auto", None, (), {}, (), {}, None, ()
        )
        yield _BatchRecorder(self, impl)

    def record_sql(self, statement: Any) -> None:
        text = _sql_text(statement)
        self.actions.extend(read_sql(text, self.line(), autocommit=self.autocommit_depth > 0))
        if self.emit_sql:
            self.migration_context.impl.static_output(text.strip().rstrip(";") + ";")

    # -- operation objects -> actions ---------------------------------------------------

    def _actions(self, op: ops.MigrateOperation, line: int) -> list[Action]:
        autocommit = self.autocommit_depth > 0
        found = _convert(op, line, self.migration_context)
        for action in found:
            action.autocommit = autocommit
        return found


class _OfflineEnvironment:
    """Stands in for ``alembic.context`` while a revision is recorded: offline, like --sql.

    Revisions that ask ``context.is_offline_mode()`` take their offline branch, as they
    would under ``alembic upgrade --sql``; anything else they ask of it is not available
    and the revision is reported as not fully analysed.
    """

    config = None
    script = None

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    def is_offline_mode(self) -> bool:
        return True

    def is_transactional_ddl(self) -> bool:
        return True

    def get_context(self) -> MigrationContext:
        return self._recorder.migration_context

    def get_bind(self) -> Any:
        return self._recorder.get_bind()

    def get_x_argument(self, as_dictionary: bool = False) -> Any:
        return {} if as_dictionary else []

    def get_tag_argument(self) -> None:
        return None


@contextmanager
def _offline_environment(recorder: _Recorder) -> Iterator[None]:
    """Point ``alembic.context`` at :class:`_OfflineEnvironment`, then put back what was there."""
    namespace = vars(alembic_context)
    names = ("_proxy", "config", "script")
    saved = {name: namespace[name] for name in names if name in namespace}
    stand_in = _OfflineEnvironment(recorder)
    namespace.update(_proxy=stand_in, config=None, script=None)
    try:
        yield
    finally:
        for name in names:
            if name in saved:
                namespace[name] = saved[name]
            else:
                namespace.pop(name, None)


class _BatchRecorder(BatchOperations):
    def __init__(self, recorder: _Recorder, impl: Any) -> None:
        super().__init__(recorder.migration_context, impl=impl)
        self._recorder = recorder

    def invoke(self, operation: ops.MigrateOperation) -> Any:
        r = self._recorder
        r.actions.extend(r._actions(operation, r.line()))
        return None


def _convert(op: ops.MigrateOperation, line: int, ctx: MigrationContext) -> list[Action]:
    if isinstance(op, ops.ExecuteSQLOp):
        return read_sql(_sql_text(op.sqltext), line)
    if isinstance(op, ops.CreateTableOp):
        pk_cols: set[str] = set()
        for item in op.columns:
            if isinstance(item, PrimaryKeyConstraint):
                pk_cols.update(str(c) for c in item._pending_colargs)
        columns = tuple(
            _column(c, pk=str(c.name) in pk_cols) for c in op.columns if isinstance(c, Column)
        )
        return [
            Action("create_table", line, table=table_key(op.table_name, op.schema), columns=columns)
        ]
    if isinstance(op, ops.DropTableOp):
        return [Action("drop_table", line, table=table_key(op.table_name, op.schema))]
    if isinstance(op, ops.RenameTableOp):
        return [
            Action(
                "rename_table",
                line,
                table=table_key(op.table_name, op.schema),
                name=op.new_table_name,
            )
        ]
    if isinstance(op, ops.AddColumnOp):
        return [
            Action(
                "add_column",
                line,
                table=table_key(op.table_name, op.schema),
                column=_column(op.column),
                column_name=str(op.column.name),
            )
        ]
    if isinstance(op, ops.DropColumnOp):
        return [
            Action(
                "drop_column",
                line,
                table=table_key(op.table_name, op.schema),
                column_name=op.column_name,
            )
        ]
    if isinstance(op, ops.AlterColumnOp):
        return _alter_column(op, line)
    if isinstance(op, ops.CreateIndexOp):
        return [
            Action(
                "create_index",
                line,
                table=table_key(op.table_name, op.schema),
                name=op.index_name,
                concurrently=bool(op.kw.get("postgresql_concurrently")),
            )
        ]
    if isinstance(op, ops.DropIndexOp):
        return [
            Action(
                "drop_index",
                line,
                table=table_key(op.table_name, op.schema) if op.table_name else None,
                name=str(op.index_name),
                concurrently=bool(op.kw.get("postgresql_concurrently")),
            )
        ]
    if isinstance(op, ops.AddConstraintOp):
        return [_constraint(op, line, ctx)]
    if isinstance(op, ops.DropConstraintOp):
        return [
            Action(
                "drop_constraint",
                line,
                table=table_key(op.table_name, op.schema),
                name=str(op.constraint_name),
            )
        ]
    if isinstance(op, ops.BulkInsertOp):
        return [Action("insert_rows", line, table=table_key(op.table.name, op.table.schema))]
    return [Action("other", line)]


def _alter_column(op: ops.AlterColumnOp, line: int) -> list[Action]:
    table = table_key(op.table_name, op.schema)
    found: list[Action] = []
    if op.modify_type is not None:
        found.append(
            Action(
                "change_type",
                line,
                table=table,
                column_name=op.column_name,
                old_type=_type_text(op.existing_type) or None,
                new_type=_type_text(op.modify_type),
            )
        )
    if op.modify_nullable is False:
        found.append(Action("set_not_null", line, table=table, column_name=op.column_name))
    if op.modify_name is not None:
        found.append(
            Action(
                "rename_column", line, table=table, column_name=op.column_name, name=op.modify_name
            )
        )
    if not found:
        found.append(Action("other_alter", line, table=table, column_name=op.column_name))
    return found


def _constraint(op: ops.AddConstraintOp, line: int, ctx: MigrationContext) -> Action:
    # Read Alembic's operation directly: building the SQLAlchemy constraint (and a Table
    # for it) costs more than the rest of the recording.
    kw: dict[str, Any] = dict(getattr(op, "kw", {}) or {})
    check = None
    if isinstance(op, ops.CreateForeignKeyOp):
        kind, table = "foreign_key", table_key(op.source_table, kw.get("source_schema"))
    elif isinstance(op, ops.CreateCheckConstraintOp):
        kind, table = "check", table_key(op.table_name, op.schema)
        check = _sql_text(op.condition)
    elif isinstance(op, ops.CreateUniqueConstraintOp):
        kind, table = "unique", table_key(op.table_name, op.schema)
    elif isinstance(op, ops.CreatePrimaryKeyOp):
        kind, table = "primary_key", table_key(op.table_name, op.schema)
    else:
        constraint = op.to_constraint(ctx)
        kind = {
            ForeignKeyConstraint: "foreign_key",
            CheckConstraint: "check",
            SAUnique: "unique",
            PrimaryKeyConstraint: "primary_key",
        }.get(type(constraint), "other")
        owner = getattr(constraint, "table", None)
        table = table_key(owner.name, owner.schema) if owner is not None else ""
        kw = dict(constraint.dialect_kwargs)
        if isinstance(constraint, CheckConstraint):
            check = _sql_text(constraint.sqltext)
    name = getattr(op, "constraint_name", None)
    return Action(
        "add_constraint",
        line,
        table=table or None,
        name=str(name) if name else None,
        constraint=kind,
        not_valid=bool(kw.get("postgresql_not_valid")),
        check_text=check,
    )


class OfflineRecorder:
    """Records revisions one after another on one offline context (made once: it is slow)."""

    def __init__(self, *, emit_sql: bool = False) -> None:
        self._buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name="postgresql",
            opts={"as_sql": True, "output_buffer": self._buffer, "literal_binds": True},
        )
        self._ops = _Recorder(context, emit_sql=emit_sql)
        self._emit_sql = emit_sql
        original: Callable[[], Any] = context.autocommit_block
        ops_ = self._ops

        @contextmanager
        def autocommit_block() -> Iterator[None]:
            ops_.autocommit_depth += 1
            try:
                if emit_sql:
                    with original():
                        yield
                else:
                    yield
            finally:
                ops_.autocommit_depth -= 1

        context.autocommit_block = autocommit_block  # type: ignore[method-assign]

    def record(self, module: ModuleType, path: str) -> Recording:
        """Run ``module.upgrade()`` against the recorder; never touches a database."""
        ops_, impl = self._ops, self._ops.migration_context.impl
        self._buffer.seek(0)
        self._buffer.truncate()
        ops_.actions = []
        ops_.autocommit_depth = 0
        ops_.start(path)
        result = Recording()
        upgrade = getattr(module, "upgrade", None)
        if not callable(upgrade):
            result.failure = "the revision has no upgrade() function"
            return result
        if self._emit_sql:
            impl.static_output("BEGIN;")
        # alembic.op is process-global: put back whatever was installed (a migration that
        # lints from its own env.py keeps its proxy). Not for use from several threads.
        previous = getattr(alembic_op, "_proxy", None)
        ops_._install_proxy()
        try:
            with _offline_environment(ops_):
                upgrade()
        except Exception as exc:  # recorded as a finding: the revision could not be read fully
            result.failure = f"{type(exc).__name__}: {exc}".strip()
            result.failure_line = _failure_line(exc, path)
        finally:
            ops_._remove_proxy()
            if previous is not None:
                previous._install_proxy()
        if self._emit_sql:
            impl.static_output("COMMIT;")
        result.actions = ops_.actions
        result.sql = self._buffer.getvalue()
        return result


def record_upgrade(module: ModuleType, path: str, *, emit_sql: bool = False) -> Recording:
    """Record one revision (see :class:`OfflineRecorder` to record many)."""
    return OfflineRecorder(emit_sql=emit_sql).record(module, path)


def _failure_line(exc: BaseException, path: str) -> int:
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
