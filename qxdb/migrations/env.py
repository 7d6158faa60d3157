"""What a service's ``env.py`` calls: :func:`run_async_migrations`.

The database URL never lives in ``alembic.ini``. It comes, in this order, from

1. the connection or URL handed over by the qxdb runner (``qxdb migrate …`` and the
   functions of :mod:`qxdb.migrations`) through ``config.attributes``;
2. ``alembic … -x database_url=…``;
3. :class:`~qxdb.settings.DatabaseSettings`: ``QX_DB__URL`` (unset: the embedded SQLite file).

Each revision runs in its own transaction (``transaction_per_migration``), unless the
runner asks for one transaction for the whole run (``--atomic``). Autogenerate compares types and server defaults, renders qxdb's portable types as
``qxdb.types.…`` (so a revision imports them rather than dialect types), and uses batch
mode on SQLite, which cannot ``ALTER`` most things in place. When env.py runs under plain
``alembic`` (not under qxdb), ``upgrade``/``downgrade``/``stamp`` still take the migration
lock of :mod:`qxdb.migrations.lock`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from sqlalchemy import JSON, MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from qxdb.errors import ConfigurationError
from qxdb.migrations.project import (
    import_metadata,
    metadata_path_from_config,
    refuse_unchosen_default,
)
from qxdb.migrations.types import render_qxdb_type
from qxdb.pg_partitions import partition_tables
from qxdb.settings import DatabaseSettings

__all__ = [
    "CONNECTION_ATTRIBUTE",
    "ON_VERSION_APPLY_ATTRIBUTE",
    "SETTINGS_ATTRIBUTE",
    "TRANSACTION_PER_MIGRATION_ATTRIBUTE",
    "run_async_migrations",
    "settings_for",
    "target_metadata_from_config",
]

# The key of Alembic's own "connection sharing" recipe, so hand-written env.py files that
# follow the recipe work under the qxdb runner too.
CONNECTION_ATTRIBUTE = "connection"
SETTINGS_ATTRIBUTE = "qxdb.settings"
ON_VERSION_APPLY_ATTRIBUTE = "qxdb.on_version_apply"
TRANSACTION_PER_MIGRATION_ATTRIBUTE = "qxdb.transaction_per_migration"
LOCK_TIMEOUT_SECONDS = 300.0
_WRITING_COMMANDS = frozenset({"upgrade", "downgrade", "stamp"})
log = logging.getLogger("qxdb.migrations")

IncludeName = Callable[[str | None, str, Mapping[str, str | None]], bool]
RenderItem = Callable[[str, Any, AutogenContext], str | bool]


def target_metadata_from_config(config: Config | None = None) -> MetaData:
    """Import the metadata named by ``[qxdb] metadata = package.module:metadata``.

    The project root must be importable: the template's ``prepend_sys_path`` sees to it;
    a config without that option has its own folder searched.
    """
    config = config or context.config
    search: Path | None = None
    if not config.get_main_option("prepend_sys_path") and config.config_file_name:
        search = Path(config.config_file_name).resolve().parent
    return import_metadata(metadata_path_from_config(config), search_path=search)


def settings_for(config: Config) -> DatabaseSettings:
    """The settings a migration run uses (runner's, ``-x database_url``, then environment).

    Under plain ``alembic``, the embedded SQLite default is refused in a project whose
    config records another dialect (the same rule as the ``qxdb`` commands').
    """
    handed: Any = config.attributes.get(SETTINGS_ATTRIBUTE)
    if isinstance(handed, DatabaseSettings):
        return handed
    x_url = context.get_x_argument(as_dictionary=True).get("database_url")
    settings = DatabaseSettings().with_url(x_url)
    refuse_unchosen_default(settings, config.config_file_name)
    return settings


def run_async_migrations(
    metadata: MetaData | None = None,
    *,
    compare_type: bool = True,
    compare_server_default: bool = True,
    include_schemas: bool = False,
    render_as_batch: bool | None = None,
    render_item: RenderItem | None = None,
    **configure: Any,
) -> None:
    """Run Alembic from ``env.py``, online (async engine) or offline (``--sql``).

    ``metadata`` defaults to the ``[qxdb] metadata`` import path of the config.
    ``render_as_batch`` defaults to on for SQLite. Extra keyword arguments go to
    ``context.configure`` unchanged.
    """
    config = context.config
    if metadata is None:
        metadata = target_metadata_from_config(config)
    if config.attributes.get(SETTINGS_ATTRIBUTE) is None and config.config_file_name:
        _configure_logging(config)
    options: dict[str, Any] = {
        # One transaction per revision: a failure keeps the revisions before it, and a
        # revision that timed out on a lock can be retried alone (--atomic: one for all).
        "transaction_per_migration": config.attributes.get(
            TRANSACTION_PER_MIGRATION_ATTRIBUTE, True
        ),
        "target_metadata": metadata,
        "compare_type": compare_type,
        "compare_server_default": compare_server_default,
        "include_schemas": include_schemas,
        "render_item": _chain_render(render_item),
        **configure,
    }
    callback = config.attributes.get(ON_VERSION_APPLY_ATTRIBUTE)
    if callback is not None:
        options["on_version_apply"] = [callback]

    shared: Connection | None = config.attributes.get(CONNECTION_ATTRIBUTE)
    if shared is not None:
        _run(shared, options, render_as_batch)
        return
    settings = settings_for(config)
    if context.is_offline_mode():
        batch = settings.dialect_name == "sqlite" if render_as_batch is None else render_as_batch
        context.configure(
            url=settings.resolved_url,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            render_as_batch=batch,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(config, settings, options, render_as_batch))


def _run(connection: Connection, options: dict[str, Any], render_as_batch: bool | None) -> None:
    batch = connection.dialect.name == "sqlite" if render_as_batch is None else render_as_batch
    if connection.dialect.name == "postgresql":
        options = {**options, "include_name": _without_partitions(connection, options)}
    context.configure(connection=connection, render_as_batch=batch, **options)
    with context.begin_transaction():
        context.run_migrations()


def _without_partitions(connection: Connection, options: dict[str, Any]) -> IncludeName:
    """An ``include_name`` hook that leaves partitions (and their indexes) out of the
    comparison, before the project's own hook if it has one: a partition is its parent's
    storage, and autogenerate would otherwise write ``op.drop_table`` for every one."""
    own: IncludeName | None = options.get("include_name")
    found: dict[str | None, set[str]] = {}
    target = options.get("target_metadata")
    metadatas = target if isinstance(target, list | tuple) else [target]
    # A partition the models declare themselves is compared like any table.
    modelled = {
        (t.schema, t.name) for md in metadatas if md is not None for t in md.tables.values()
    }

    def partitions(schema: str | None) -> set[str]:
        if schema not in found:
            found[schema] = {
                name
                for name in partition_tables(connection, schema)
                if (schema, name) not in modelled
            }
        return found[schema]

    def include(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
        schema = parent_names.get("schema_name")
        table = name if type_ == "table" else parent_names.get("table_name")
        if table is not None and table in partitions(schema):
            return False
        return own(name, type_, parent_names) if own is not None else True

    return include


async def _run_online(
    config: Config,
    settings: DatabaseSettings,
    options: dict[str, Any],
    render_as_batch: bool | None,
) -> None:
    from qxdb.engine import connect_checked
    from qxdb.migrations.connection import migration_engine
    from qxdb.migrations.lock import migration_lock

    engine = migration_engine(settings)
    try:
        if _running_command(config) in _WRITING_COMMANDS:
            async with (
                migration_lock(engine, max_wait=_lock_timeout(), on_wait=_say_waiting),
                connect_checked(engine) as conn,
            ):
                await conn.run_sync(_run, options, render_as_batch)
        else:
            async with connect_checked(engine) as conn:
                await conn.run_sync(_run, options, render_as_batch)
    finally:
        await engine.dispose()


def _lock_timeout() -> float:
    """``alembic … -x lock_timeout=SECONDS``, else the default."""
    raw = context.get_x_argument(as_dictionary=True).get("lock_timeout")
    if raw is None:
        return LOCK_TIMEOUT_SECONDS
    try:
        return max(float(raw), 0.0)
    except ValueError:
        raise ConfigurationError(f"-x lock_timeout={raw!r} is not a number of seconds") from None


def _running_command(config: Config) -> str | None:
    """The ``alembic`` console command being run, when env.py runs under it."""
    cmd = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    fn = cmd[0] if isinstance(cmd, tuple) and cmd else None
    return getattr(fn, "__name__", None)


def _say_waiting(message: str) -> None:
    # Under plain alembic the ini's logging prints this; unconfigured logging still
    # shows warnings on stderr (logging.lastResort).
    log.warning("qxdb: %s", message)


def _configure_logging(config: Config) -> None:
    if not config.file_config.has_section("loggers"):
        return
    from logging.config import fileConfig

    # Never silence the loggers an application configured before running migrations.
    fileConfig(config.config_file_name, disable_existing_loggers=False)  # type: ignore[arg-type]


def _chain_render(user: RenderItem | None) -> RenderItem:
    def render(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
        if user is not None:
            rendered = user(type_, obj, autogen_context)
            if rendered is not False:
                return rendered
        if type_ == "type" and isinstance(obj, TypeEngine | JSON):
            return render_qxdb_type(obj, autogen_context)
        return False

    return render
