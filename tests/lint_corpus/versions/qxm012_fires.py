"""QXM012 fires: a column dropped while the app may still read it."""

from alembic import op

# expect: QXM012

revision = "qxm012_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("orders", "legacy_code")


def downgrade() -> None:
    pass
