"""QXM001 safe: an index on a table created in the same revision needs no CONCURRENTLY."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm001_safe_new_table"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "shipments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])


def downgrade() -> None:
    pass
