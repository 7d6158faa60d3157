"""QXM021 fires: a DELETE of the whole table in one statement."""

from alembic import op

# expect: QXM021

revision = "qxm021_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("DELETE FROM sessions")


def downgrade() -> None:
    pass
