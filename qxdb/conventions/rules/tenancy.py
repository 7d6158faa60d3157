"""Tenancy in the database: a tenant table behind row-level security (opt-in)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import text

from qxdb.conventions.rules.base import CheckContext, Violation, rule
from qxdb.conventions.snapshot import TableSnapshot

_RLS_STATE = text(
    "SELECT c.relrowsecurity, c.relforcerowsecurity, "
    "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) "
    "FROM pg_class c WHERE c.oid = to_regclass(quote_ident(:name))"
)


@rule(
    "QX026",
    "tenant-rls",
    rationale="Row-level security is the database's own wall between tenants: a raw query "
    "that forgets the tenant filter returns nothing instead of every tenant's rows.",
    hint="In a revision: op.enable_tenant_rls('<table>') (import qxdb.migrations.rls_ops), "
    "and UnitOfWork(..., rls=True).",
    sources=("postgresql",),
    scope="entity",
    opt_in=True,
)
def tenant_rls(table: TableSnapshot, ctx: CheckContext) -> Iterator[Violation]:
    """A table with a ``tenant_id`` column that PostgreSQL does not filter by tenant.

    Opt-in (``[tool.qxdb.schema.rules] tenant-rls = "error"``): for projects that put
    every tenant table behind row-level security as a second wall (docs/repository.md,
    "Row-level security"). Flags RLS not enabled, not forced (the table's owner, often
    the service's role, would bypass it) and a table with no policy at all.

    Fix: ``op.enable_tenant_rls("<table>")`` in a migration revision.
    """
    if "tenant_id" not in table.columns or ctx.connection is None:
        return
    state = ctx.connection.execute(_RLS_STATE, {"name": table.name}).first()
    if state is None:  # pragma: no cover - the table was just reflected
        return
    enabled, forced, has_policy = state
    if not enabled:
        yield Violation(f"{table.name} has a tenant_id column but row-level security is off")
        return
    if not forced:
        yield Violation(
            f"{table.name}: row-level security is not FORCEd, so the table's owner bypasses it"
        )
    if not has_policy:
        yield Violation(f"{table.name}: row-level security is on but no policy lets rows through")
