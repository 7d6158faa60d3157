"""QXM015 safe: a unique index built CONCURRENTLY, then the key USING it."""

from alembic import op

# expect: nothing

revision = "qxm015_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.execute("CREATE UNIQUE INDEX CONCURRENTLY pk_events ON events (id)")
    op.execute("ALTER TABLE events ADD CONSTRAINT pk_events PRIMARY KEY USING INDEX pk_events")


def downgrade() -> None:
    pass
