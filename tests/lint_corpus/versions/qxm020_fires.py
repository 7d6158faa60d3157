"""QXM020 fires: ALTER TYPE ... ADD VALUE inside the transaction."""

from alembic import op

# expect: QXM020

revision = "qxm020_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("ALTER TYPE order_status ADD VALUE 'refunded'")


def downgrade() -> None:
    pass
