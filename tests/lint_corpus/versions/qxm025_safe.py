"""QXM025 safe: a revision that only writes through the connection."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm025_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.get_bind().execute(sa.text("UPDATE orders SET status = 'new' WHERE id < 1000"))


def downgrade() -> None:
    pass
