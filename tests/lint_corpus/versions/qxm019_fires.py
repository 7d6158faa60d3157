"""QXM019 fires: a varchar(n) column (QXM019 is off by default; the corpus turns it on)."""

import sqlalchemy as sa
from alembic import op

# expect: QXM019

revision = "qxm019_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("customers", sa.Column("nickname", sa.String(40)))


def downgrade() -> None:
    pass
