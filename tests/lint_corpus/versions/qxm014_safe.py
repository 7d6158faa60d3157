"""QXM014 safe: a unique index built CONCURRENTLY, then the constraint USING it."""

from alembic import op

# expect: nothing

revision = "qxm014_safe"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '5s'")
    with op.get_context().autocommit_block():
        op.create_index(
            "uq_customers_email",
            "customers",
            ["email"],
            unique=True,
            postgresql_concurrently=True,
        )
    op.execute(
        "ALTER TABLE customers ADD CONSTRAINT uq_customers_email UNIQUE USING INDEX uq_customers_email"
    )


def downgrade() -> None:
    pass
