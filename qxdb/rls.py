"""PostgreSQL row-level security as a second tenancy wall (optional).

The repository already scopes every statement to the tenant of the request context; a
raw ``text("SELECT * FROM orders")`` does not. With RLS on a tenant table, PostgreSQL
itself filters every statement by a per-transaction setting:

- :func:`policy_statements` is the DDL (``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and
  one policy); :mod:`qxdb.migrations.rls_ops` makes it an Alembic operation,
  ``op.enable_tenant_rls("orders")``.
- the policy lets a row through when its ``tenant_id`` equals
  ``current_setting('qx.tenant_id', true)``, or when ``qx.rls_bypass`` is ``on``. No
  setting → NULL → no row (fail closed, as the repository).
- :func:`apply_tenant_setting` sets both with ``set_config(…, true)``: local to the current
  transaction, so it ends with it and a pooled connection never carries it to another
  request, even behind PgBouncer in transaction mode. ``UnitOfWork(rls=True)`` calls it
  at the start of each transaction (:func:`install_tenant_setting`);
  :func:`tenant_transaction` is the helper for code outside a unit of work.
- :func:`~qxdb.context.system_scope` maps to ``qx.rls_bypass = on``: the explicit,
  greppable bypass.

What this wall is for: mistakes (a forgotten filter, a raw query, a report written in
SQL). It is not a wall against SQL injection: a statement that can call ``set_config`` can
set the tenant too. Superusers and roles with ``BYPASSRLS`` are never filtered: run the
service as an ordinary role (the table owner is filtered because of ``FORCE``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from qxdb.context import RequestContext, current_context
from qxdb.core.identifiers import InvalidIdentifier, validate_identifier
from qxdb.errors import ConfigurationError

__all__ = [
    "BYPASS_SETTING",
    "POLICY_NAME",
    "TENANT_SETTING",
    "apply_tenant_setting",
    "disable_statements",
    "install_tenant_setting",
    "policy_statements",
    "setting_values",
    "tenant_transaction",
]

TENANT_SETTING = "qx.tenant_id"
BYPASS_SETTING = "qx.rls_bypass"
POLICY_NAME = "qx_tenant_isolation"

# One statement, one round trip, for both settings.
_SET = text(
    f"SELECT set_config('{TENANT_SETTING}', :tenant, true), "
    f"set_config('{BYPASS_SETTING}', :bypass, true)"
)


def setting_values(ctx: RequestContext | None = None) -> dict[str, str]:
    """What the transaction's settings are for ``ctx`` (default: the current context).

    An empty tenant (none in the context, or system scope) matches no row; only system
    scope turns the bypass on.
    """
    ctx = ctx or current_context()
    tenant = "" if ctx.system or ctx.tenant_id is None else str(ctx.tenant_id)
    return {"tenant": tenant, "bypass": "on" if ctx.system else "off"}


def policy_statements(
    table: str,
    *,
    column: str = "tenant_id",
    column_type: str = "uuid",
    schema: str | None = None,
    policy: str = POLICY_NAME,
) -> list[str]:
    """The DDL that puts ``table`` behind the tenant policy (idempotent as a whole).

    The setting is cast to ``column_type`` (not the column to text) so that a raw query's
    ``tenant_id = …`` and the policy both use the ``tenant_id`` index.
    """
    target = _qualified(table, schema)
    col = _quoted(column, "column")
    # Each setting in its own scalar subquery: PostgreSQL evaluates it once per statement
    # (an InitPlan) instead of once per row scanned, which a page ordered by another
    # index than tenant_id's would otherwise pay for every row it skips.
    matches = (
        f"({col} = (SELECT NULLIF(current_setting('{TENANT_SETTING}', true), '')"
        f"::{_type(column_type)})"
        f" OR (SELECT current_setting('{BYPASS_SETTING}', true)) = 'on')"
    )
    name = _quoted(policy, "policy name")
    return [
        f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {target} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {name} ON {target}",
        f"CREATE POLICY {name} ON {target} USING {matches} WITH CHECK {matches}",
    ]


def disable_statements(
    table: str, *, schema: str | None = None, policy: str = POLICY_NAME
) -> list[str]:
    """The DDL that undoes :func:`policy_statements`."""
    target = _qualified(table, schema)
    return [
        f"DROP POLICY IF EXISTS {_quoted(policy, 'policy name')} ON {target}",
        f"ALTER TABLE {target} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {target} DISABLE ROW LEVEL SECURITY",
    ]


async def apply_tenant_setting(
    target: AsyncSession | AsyncConnection, ctx: RequestContext | None = None
) -> None:
    """Set the tenant (and bypass) of the transaction open on ``target`` (PostgreSQL only;
    elsewhere nothing to do). Call it first in each transaction."""
    bind = target.get_bind() if isinstance(target, AsyncSession) else target
    if bind.dialect.name == "postgresql":
        await target.execute(_SET, setting_values(ctx))


def _on_begin(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(_SET, setting_values())


def install_tenant_setting(session: AsyncSession) -> None:
    """Have ``session`` set the tenant at the start of each of its transactions, from the
    request context of that moment (what ``UnitOfWork(rls=True)`` does)."""
    sync = session.sync_session
    if not event.contains(sync, "after_begin", _on_begin):
        event.listen(sync, "after_begin", _on_begin)


@asynccontextmanager
async def tenant_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``async with tenant_transaction(engine) as conn``: a transaction (committed on a
    clean exit) whose first statement sets the current context's tenant."""
    async with engine.begin() as conn:
        await apply_tenant_setting(conn)
        yield conn


def _quoted(name: str, what: str) -> str:
    """``name`` (or ``schema.name``) checked as plain identifiers, then double-quoted so
    that its case is kept."""
    try:
        validate_identifier(name, what=what)
    except InvalidIdentifier as exc:
        raise ConfigurationError(str(exc)) from None
    return ".".join(f'"{part}"' for part in name.split("."))


def _qualified(table: str, schema: str | None) -> str:
    name = _quoted(table, "table")
    return f"{_quoted(schema, 'schema')}.{name}" if schema else name


def _type(name: str) -> str:
    # A type name goes into DDL as written: allow only what a type name looks like.
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789_ ()")
    if not name or not set(name.lower()) <= allowed:
        raise ConfigurationError(f"not a column type name: {name!r}")
    return name
