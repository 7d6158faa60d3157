"""QXM024 safe: a suppression with its reason."""

from alembic import op

# expect: nothing

revision = "qxm024_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("orders", "fax")  # qxdb: lint-ignore[QXM012] fax removed from the app in 1.9


def downgrade() -> None:
    pass
