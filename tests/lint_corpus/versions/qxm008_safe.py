"""QXM008 safe: the column added bare, the default set for new rows only."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm008_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("token", sa.Uuid()))
    op.alter_column("orders", "token", server_default=sa.text("gen_random_uuid()"))


def downgrade() -> None:
    pass
