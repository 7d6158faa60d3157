"""QXM017 safe: timestamptz."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm017_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("shipped_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    pass
