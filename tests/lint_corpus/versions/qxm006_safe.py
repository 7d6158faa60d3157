"""QXM006 safe: step 2: VALIDATE the check, then SET NOT NULL needs no scan."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm006_safe"
down_revision = "qxm006_safe_step1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.execute("ALTER TABLE orders VALIDATE CONSTRAINT ck_orders_note_not_null")
    op.alter_column("orders", "note", existing_type=sa.Text(), nullable=False)
    op.drop_constraint("ck_orders_note_not_null", "orders", type_="check")


def downgrade() -> None:
    pass
