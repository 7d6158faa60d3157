"""QXM008 fires: a column added with a volatile default rewrites the table."""

import sqlalchemy as sa
from alembic import op

# expect: QXM008

revision = "qxm008_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column(
        "orders",
        sa.Column("token", sa.Uuid(), server_default=sa.text("gen_random_uuid()")),
    )


def downgrade() -> None:
    pass
