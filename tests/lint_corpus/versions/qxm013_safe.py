"""QXM013 safe: the drop, suppressed for the whole file with the reason."""

from alembic import op

# expect: nothing

revision = "qxm013_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # qxdb: lint-ignore-file[QXM013] importer retired in 3.0, table backed up
    op.execute("SET lock_timeout = '5s'")
    op.drop_table("legacy_imports")


def downgrade() -> None:
    pass
