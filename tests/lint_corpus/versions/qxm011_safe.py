"""QXM011 safe: a view under the new name while the app moves over."""

from alembic import op

# expect: nothing

revision = "qxm011_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("CREATE VIEW purchase_orders AS SELECT * FROM orders")


def downgrade() -> None:
    pass
