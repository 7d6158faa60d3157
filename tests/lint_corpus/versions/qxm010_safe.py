"""QXM010 safe: the new column added beside the old one (expand step)."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm010_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("remark", sa.Text()))


def downgrade() -> None:
    pass
