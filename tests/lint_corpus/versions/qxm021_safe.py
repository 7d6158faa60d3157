"""QXM021 safe: the DELETE bounded to one batch."""

from alembic import op

# expect: nothing

revision = "qxm021_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute(
        "DELETE FROM sessions WHERE id IN "
        "(SELECT id FROM sessions WHERE expires_at < now() LIMIT 10000)"
    )


def downgrade() -> None:
    pass
