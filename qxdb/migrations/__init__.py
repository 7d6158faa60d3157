"""Alembic, the qxdb way: a template, a lock, and one function per command.

- :func:`run_async_migrations` is what a service's ``env.py`` calls (the URL comes from
  :class:`~qxdb.settings.DatabaseSettings`, never from ``alembic.ini``);
- :func:`init_project` lays down the qxdb template (``qxdb migrate init``);
- :func:`upgrade`, :func:`downgrade`, :func:`stamp` (under the migration lock),
  :func:`revision`, :func:`current`, :func:`history`, :func:`heads`, :func:`check`,
  :func:`plan_downgrade`, :func:`merge` and :func:`upgrade_sql` are the commands, callable from code::

      from qxdb.migrations import upgrade

      run = await upgrade(lock_timeout=120)   # at service start-up
"""

from qxdb.migrations.connection import (
    DEFAULT_DDL_LOCK_TIMEOUT,
    MAX_DDL_LOCK_TIMEOUT,
    check_ddl_lock_timeout,
)
from qxdb.migrations.env import run_async_migrations, target_metadata_from_config
from qxdb.migrations.failure import MigrationFailure
from qxdb.migrations.lock import MigrationLockTimeoutError, migration_lock
from qxdb.migrations.project import find_config, import_metadata, refuse_unchosen_default
from qxdb.migrations.runner import (
    DEFAULT_LOCK_RETRIES,
    DEFAULT_LOCK_TIMEOUT,
    AppliedStep,
    CheckReport,
    CurrentState,
    MigrationError,
    MigrationRun,
    NewRevision,
    RevisionFailedError,
    RevisionInfo,
    check,
    current,
    downgrade,
    heads,
    history,
    merge,
    plan_downgrade,
    revision,
    stamp,
    upgrade,
    upgrade_sql,
)
from qxdb.migrations.scaffold import InitResult, init_project

__all__ = [
    "DEFAULT_DDL_LOCK_TIMEOUT",
    "DEFAULT_LOCK_RETRIES",
    "DEFAULT_LOCK_TIMEOUT",
    "MAX_DDL_LOCK_TIMEOUT",
    "AppliedStep",
    "CheckReport",
    "CurrentState",
    "InitResult",
    "MigrationError",
    "MigrationFailure",
    "MigrationLockTimeoutError",
    "MigrationRun",
    "NewRevision",
    "RevisionFailedError",
    "RevisionInfo",
    "check",
    "check_ddl_lock_timeout",
    "current",
    "downgrade",
    "find_config",
    "heads",
    "history",
    "import_metadata",
    "init_project",
    "merge",
    "migration_lock",
    "plan_downgrade",
    "refuse_unchosen_default",
    "revision",
    "run_async_migrations",
    "stamp",
    "target_metadata_from_config",
    "upgrade",
    "upgrade_sql",
]
