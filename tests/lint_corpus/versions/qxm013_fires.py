"""QXM013 fires: a table dropped."""

from alembic import op

# expect: QXM013

revision = "qxm013_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_table("legacy_imports")


def downgrade() -> None:
    pass
