"""QXM012 safe: the drop, suppressed with the reason."""

from alembic import op

# expect: nothing

revision = "qxm012_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    # qxdb: lint-ignore[QXM012] the app stopped reading legacy_code in release 2.4
    op.drop_column("orders", "legacy_code")


def downgrade() -> None:
    pass
