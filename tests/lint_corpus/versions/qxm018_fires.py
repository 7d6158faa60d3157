"""QXM018 fires: a char(n) column."""

import sqlalchemy as sa
from alembic import op

# expect: QXM018

revision = "qxm018_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("customers", sa.Column("country", sa.CHAR(2)))


def downgrade() -> None:
    pass
