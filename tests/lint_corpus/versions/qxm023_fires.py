"""QXM023 fires: a schema change and a backfill in one revision."""

import sqlalchemy as sa
from alembic import op

# expect: QXM023

revision = "qxm023_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("currency", sa.Text()))
    op.execute("UPDATE orders SET currency = 'EUR' WHERE id BETWEEN 1 AND 10000")


def downgrade() -> None:
    pass
