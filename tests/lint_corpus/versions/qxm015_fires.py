"""QXM015 fires: a primary key added to an existing table."""

from alembic import op

# expect: QXM015

revision = "qxm015_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_primary_key("pk_events", "events", ["id"])


def downgrade() -> None:
    pass
