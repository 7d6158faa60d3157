"""QXM001 safe: the same index, CONCURRENTLY, outside the transaction."""

from alembic import op

# expect: nothing

revision = "qxm001_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_orders_placed_at", "orders", ["placed_at"], postgresql_concurrently=True
        )


def downgrade() -> None:
    pass
