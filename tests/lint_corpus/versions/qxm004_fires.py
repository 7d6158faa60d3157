"""QXM004 fires: a foreign key validated while it is added."""

from alembic import op

# expect: QXM004

revision = "qxm004_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_foreign_key(
        "fk_orders_customer_id_customers", "orders", "customers", ["customer_id"], ["id"]
    )


def downgrade() -> None:
    pass
