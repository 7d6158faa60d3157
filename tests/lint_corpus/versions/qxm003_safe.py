"""QXM003 safe: CONCURRENTLY (raw SQL) inside an autocommit block."""

from alembic import op

# expect: nothing

revision = "qxm003_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY ix_orders_status ON orders (status)")


def downgrade() -> None:
    pass
