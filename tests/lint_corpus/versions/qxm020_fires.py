"""QXM020 fires: an enum value added and used in the same transaction."""

from alembic import op

# expect: QXM020

revision = "qxm020_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("ALTER TYPE order_status ADD VALUE 'refunded'")
    op.execute("UPDATE orders SET status = 'refunded' WHERE id = 42")


def downgrade() -> None:
    pass
