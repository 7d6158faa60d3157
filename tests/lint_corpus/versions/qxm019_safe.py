"""QXM019 safe: a text column with a CHECK on its length, added NOT VALID."""

import sqlalchemy as sa
from alembic import op

# expect: nothing

revision = "qxm019_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    op.add_column("customers", sa.Column("nickname", sa.Text()))
    op.create_check_constraint(
        "ck_customers_nickname_length",
        "customers",
        "length(nickname) <= 40",
        postgresql_not_valid=True,
    )


def downgrade() -> None:
    pass
