"""QXM006 safe: step 1 of the NOT NULL recipe: a CHECK (note IS NOT NULL) NOT VALID."""

from alembic import op

# expect: nothing

revision = "qxm006_safe_step1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.create_check_constraint(
        "ck_orders_note_not_null", "orders", "note IS NOT NULL", postgresql_not_valid=True
    )


def downgrade() -> None:
    pass
