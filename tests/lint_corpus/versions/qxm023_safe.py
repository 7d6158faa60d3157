"""QXM023 safe: the backfill batch in a revision of its own."""

from alembic import op

# expect: nothing

revision = "qxm023_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("UPDATE orders SET currency = 'EUR' WHERE id BETWEEN 1 AND 10000")


def downgrade() -> None:
    pass
