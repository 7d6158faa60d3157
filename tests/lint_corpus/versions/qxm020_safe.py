"""QXM020 safe: the value added in an autocommit block, used after it."""

from alembic import op

# expect: nothing

revision = "qxm020_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded'")
    op.execute("UPDATE orders SET status = 'refunded' WHERE id = 42")


def downgrade() -> None:
    pass
