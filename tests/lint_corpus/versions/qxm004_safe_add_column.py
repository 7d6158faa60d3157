"""QXM004 safe: the column added bare, its foreign key added NOT VALID."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm004_safe_add_column"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("coupon_id", sa.BigInteger()))
    op.create_foreign_key(
        "fk_orders_coupon_id_coupons",
        "orders",
        "coupons",
        ["coupon_id"],
        ["id"],
        postgresql_not_valid=True,
    )


def downgrade() -> None:
    pass
