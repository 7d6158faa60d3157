"""QXM004 fires: a new column with REFERENCES validates the foreign key at once."""

import sqlalchemy as sa
from alembic import op

# expect: QXM004

revision = "qxm004_fires_add_column"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "orders",
        sa.Column("coupon_id", sa.BigInteger(), sa.ForeignKey("coupons.id")),
    )


def downgrade() -> None:
    pass
