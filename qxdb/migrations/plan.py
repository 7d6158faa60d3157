"""``plan_upgrade``: which revisions an upgrade would apply, without applying them.

The counterpart of :func:`qxdb.migrations.runner.plan_downgrade`. The command asks it
after Ctrl-C, to say which revisions were applied and which were not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qxdb.migrations.runner import (
    ConfigPath,
    RevisionInfo,
    _load,
    _on_connection,
    _run_env,
    _scripts,
    alembic_errors,
)

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

    from qxdb.settings import DatabaseSettings

__all__ = ["plan_upgrade"]


async def plan_upgrade(
    revision: str = "head",
    *,
    config: ConfigPath = None,
    settings: DatabaseSettings | None = None,
) -> list[RevisionInfo]:
    """The revisions ``upgrade(revision)`` would apply from where the database is, oldest
    first (read-only; empty when it is there already)."""
    cfg = _load(config, settings)
    script = _scripts(cfg)
    plan: list[RevisionInfo] = []

    def read(_rev: Any, context: MigrationContext) -> list[Any]:
        current_heads = context.get_current_heads()
        with alembic_errors():
            upper = script.iterate_revisions(revision, current_heads, implicit_base=True)
            plan.extend(
                RevisionInfo.of(s) for s in reversed(list(upper)) if s.revision not in current_heads
            )
        return []

    await _on_connection(cfg, lambda: _run_env(cfg, script, read))
    return plan
