"""QXM014 fires: a unique constraint that builds its index under ACCESS EXCLUSIVE."""

from alembic import op

# expect: QXM014

revision = "qxm014_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_unique_constraint("uq_customers_email", "customers", ["email"])


def downgrade() -> None:
    pass
