"""QXM016 fires: a serial (int4) primary key."""

import sqlalchemy as sa
from alembic import op

# expect: QXM016

revision = "qxm016_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "tags", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("name", sa.Text())
    )


def downgrade() -> None:
    pass
