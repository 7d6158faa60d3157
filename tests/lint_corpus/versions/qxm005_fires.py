"""QXM005 fires: a CHECK constraint validated while it is added."""

from alembic import op

# expect: QXM005

revision = "qxm005_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_check_constraint("ck_orders_total_positive", "orders", "total >= 0")


def downgrade() -> None:
    pass
