"""QXM002 safe: the same index dropped CONCURRENTLY outside the transaction."""

from alembic import op

# expect: nothing

revision = "qxm002_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.drop_index("ix_orders_note", table_name="orders", postgresql_concurrently=True)


def downgrade() -> None:
    pass
