"""QXM002 fires: an index dropped without CONCURRENTLY."""

from alembic import op

# expect: QXM002

revision = "qxm002_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_index("ix_orders_note", table_name="orders")


def downgrade() -> None:
    pass
