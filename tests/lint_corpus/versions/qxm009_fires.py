"""QXM009 fires: integer to bigint rewrites the table."""

import sqlalchemy as sa
from alembic import op

# expect: QXM009

revision = "qxm009_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.alter_column("orders", "quantity", existing_type=sa.Integer(), type_=sa.BigInteger())


def downgrade() -> None:
    pass
