"""QXM016 safe: a bigint identity primary key."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm016_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_table(
        "tags",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text()),
    )


def downgrade() -> None:
    pass
