"""QXM007 safe: the NOT NULL column with a constant default."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm007_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    pass
