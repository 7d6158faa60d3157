"""QXM006 fires: SET NOT NULL that scans the table."""

import sqlalchemy as sa
from alembic import op

# expect: QXM006

revision = "qxm006_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.alter_column("orders", "note", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    pass
