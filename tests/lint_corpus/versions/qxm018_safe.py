"""QXM018 safe: a text column."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm018_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("customers", sa.Column("country", sa.Text()))


def downgrade() -> None:
    pass
