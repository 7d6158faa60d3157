"""QXM022 fires: an ALTER with no lock_timeout."""

import sqlalchemy as sa
from alembic import op

# expect: QXM022

revision = "qxm022_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("gift_note", sa.Text()))


def downgrade() -> None:
    pass
