"""QXM003 fires: CONCURRENTLY inside the revision's transaction."""

from alembic import op

# expect: QXM003

revision = "qxm003_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_index("ix_orders_status", "orders", ["status"], postgresql_concurrently=True)


def downgrade() -> None:
    pass
