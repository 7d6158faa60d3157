"""QXM022 safe: the same ALTER after SET lock_timeout."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm022_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("gift_note", sa.Text()))


def downgrade() -> None:
    pass
