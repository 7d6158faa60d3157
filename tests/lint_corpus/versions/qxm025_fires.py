"""QXM025 fires: a revision that reads rows cannot be analysed offline."""

import sqlalchemy as sa
from alembic import op

# expect: QXM025

revision = "qxm025_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM orders")).scalar()
    if count:
        op.execute("UPDATE orders SET status = 'new' WHERE status IS NULL AND id < 1000")


def downgrade() -> None:
    pass
