"""QXM005 safe: the CHECK added NOT VALID."""

from alembic import op

# expect: nothing

revision = "qxm005_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_check_constraint(
        "ck_orders_total_positive", "orders", "total >= 0", postgresql_not_valid=True
    )


def downgrade() -> None:
    pass
