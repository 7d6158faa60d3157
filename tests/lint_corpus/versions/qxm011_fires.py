"""QXM011 fires: a table renamed under the running app."""

from alembic import op

# expect: QXM011

revision = "qxm011_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.rename_table("orders", "purchase_orders")


def downgrade() -> None:
    pass
