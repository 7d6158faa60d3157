"""QXM009 safe: varchar(100) to text is metadata only."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm009_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.alter_column("orders", "reference", existing_type=sa.String(100), type_=sa.Text())


def downgrade() -> None:
    pass
