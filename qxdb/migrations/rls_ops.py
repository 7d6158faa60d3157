"""Alembic operations for tenant row-level security (PostgreSQL), usable in revisions::

    import qxdb.migrations.rls_ops  # noqa: F401  (registers the operations)

    def upgrade() -> None:
        op.enable_tenant_rls("orders")

    def downgrade() -> None:
        op.disable_tenant_rls("orders")

The DDL is :func:`qxdb.rls.policy_statements` (ENABLE and FORCE ROW LEVEL SECURITY, and
a policy on ``current_setting('qx.tenant_id', true)``); each operation reverses into the
other. Autogenerate does not see policies: write the operation in the revision that
creates the table (see docs/repository.md, "Row-level security").
"""

from __future__ import annotations

from typing import Any

from alembic.operations import MigrateOperation, Operations

from qxdb.rls import POLICY_NAME, disable_statements, policy_statements

__all__ = ["DisableTenantRLSOp", "EnableTenantRLSOp"]


class _TenantRLSOp(MigrateOperation):
    def __init__(
        self,
        table_name: str,
        *,
        column: str = "tenant_id",
        column_type: str = "uuid",
        schema: str | None = None,
        policy: str = POLICY_NAME,
    ) -> None:
        self.table_name = table_name
        self.column = column
        self.column_type = column_type
        self.schema = schema
        self.policy = policy

    def _options(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "column_type": self.column_type,
            "schema": self.schema,
            "policy": self.policy,
        }


@Operations.register_operation("enable_tenant_rls")
class EnableTenantRLSOp(_TenantRLSOp):
    """``op.enable_tenant_rls(table, column="tenant_id", column_type="uuid")``."""

    @classmethod
    def enable_tenant_rls(cls, operations: Operations, table_name: str, **options: Any) -> Any:
        return operations.invoke(cls(table_name, **options))

    def reverse(self) -> DisableTenantRLSOp:
        return DisableTenantRLSOp(self.table_name, **self._options())


@Operations.register_operation("disable_tenant_rls")
class DisableTenantRLSOp(_TenantRLSOp):
    """``op.disable_tenant_rls(table)``: drop the policy, stop forcing and enabling RLS."""

    @classmethod
    def disable_tenant_rls(cls, operations: Operations, table_name: str, **options: Any) -> Any:
        return operations.invoke(cls(table_name, **options))

    def reverse(self) -> EnableTenantRLSOp:
        return EnableTenantRLSOp(self.table_name, **self._options())


@Operations.implementation_for(EnableTenantRLSOp)
def _enable(operations: Operations, operation: EnableTenantRLSOp) -> None:
    options = operation._options()
    for sql in policy_statements(
        operation.table_name,
        column=options["column"],
        column_type=options["column_type"],
        schema=options["schema"],
        policy=options["policy"],
    ):
        operations.execute(sql)


@Operations.implementation_for(DisableTenantRLSOp)
def _disable(operations: Operations, operation: DisableTenantRLSOp) -> None:
    for sql in disable_statements(
        operation.table_name, schema=operation.schema, policy=operation.policy
    ):
        operations.execute(sql)
