"""QXM004 safe: the foreign key added NOT VALID (validated in a later revision)."""

from alembic import op

# expect: nothing

revision = "qxm004_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_foreign_key(
        "fk_orders_customer_id_customers",
        "orders",
        "customers",
        ["customer_id"],
        ["id"],
        postgresql_not_valid=True,
    )


def downgrade() -> None:
    pass
