"""QXM001 fires: an index built on an existing table without CONCURRENTLY."""

from alembic import op

# expect: QXM001

revision = "qxm001_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_index("ix_orders_placed_at", "orders", ["placed_at"])


def downgrade() -> None:
    pass
