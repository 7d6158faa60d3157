"""QXM017 fires: timestamp without time zone."""

import sqlalchemy as sa
from alembic import op

# expect: QXM017

revision = "qxm017_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("orders", sa.Column("shipped_at", sa.DateTime()))


def downgrade() -> None:
    pass
