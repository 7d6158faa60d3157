"""QXM024 fires: a suppression without a reason silences nothing."""

from alembic import op

# expect: QXM012, QXM024

revision = "qxm024_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.drop_column("orders", "fax")  # qxdb: lint-ignore[QXM012]


def downgrade() -> None:
    pass
