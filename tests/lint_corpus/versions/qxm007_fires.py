"""QXM007 fires: a NOT NULL column with no default on a table that has rows."""

import sqlalchemy as sa
from alembic import op

# expect: QXM007

revision = "qxm007_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("priority", sa.Integer(), nullable=False))


def downgrade() -> None:
    pass
