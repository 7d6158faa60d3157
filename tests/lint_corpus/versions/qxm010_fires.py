"""QXM010 fires: a column renamed under the running app."""

from alembic import op

# expect: QXM010

revision = "qxm010_fires"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.alter_column("orders", "note", new_column_name="remark")


def downgrade() -> None:
    pass
