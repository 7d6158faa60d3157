"""A healthy migration history and ten broken ones: the fixtures of the migration test kit.

Each history is a models module and a set of revision files, laid down into a qxdb
project by :func:`lay_down`. ``BROKEN`` maps a name to the check that must catch it and
whether the defect can show on SQLite at all.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from qxdb.migrations import init_project
from tests.cli.migrate_support import make_project

MODELS = """
from sqlalchemy import Column, Index, Integer, String, Table

from qxdb.mapping import make_metadata

metadata = make_metadata()

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String({name_length})),
    Column("qty", Integer),
    {extra_columns}
)
Index("ix_items_name", items.c.name)
{extra_tables}
"""

R1 = '''
"""items"""
import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(50)),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_index("ix_items_name", "items", ["name"])


def downgrade() -> None:
    op.drop_index("ix_items_name", "items")
    op.drop_table("items")
'''

R2 = '''
"""items.qty and a seed row"""
import sqlalchemy as sa
from alembic import op

revision = "r2"
down_revision = {parent!r}


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''
R2_UPGRADE = """\
    op.add_column("items", sa.Column("qty", sa.Integer))
    op.execute("INSERT INTO items (id, name) VALUES (1, 'seed')")"""
R2_DOWNGRADE = """\
    op.execute("DELETE FROM items WHERE id = 1")
    op.drop_column("items", "qty")"""

R3 = '''
"""{doc}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = "r2"


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


@dataclass(frozen=True)
class History:
    r2_upgrade: str = R2_UPGRADE
    r2_downgrade: str = R2_DOWNGRADE
    r2_parent: str = "r1"
    name_length: int = 50
    extra_columns: str = ""
    extra_tables: str = ""
    third: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # rev: (doc, up, down)


@dataclass(frozen=True)
class Broken:
    history: History
    caught_by: str
    on_sqlite: bool = True


HEALTHY = History()

BROKEN: dict[str, Broken] = {
    "downgrade_forgets_a_column": Broken(
        History(r2_downgrade='    op.execute("DELETE FROM items WHERE id = 1")'), "no_trace"
    ),
    "two_heads": Broken(
        History(
            extra_columns='Column("color", String(20)), Column("size", Integer),',
            third={
                "r3a": (
                    "color",
                    '    op.add_column("items", sa.Column("color", sa.String(20)))',
                    '    op.drop_column("items", "color")',
                ),
                "r3b": (
                    "size",
                    '    op.add_column("items", sa.Column("size", sa.Integer))',
                    '    op.drop_column("items", "size")',
                ),
            },
        ),
        "single_head",
    ),
    "model_not_in_the_migrations": Broken(
        History(
            extra_tables='customers = Table("customers", metadata, '
            'Column("id", Integer, primary_key=True))'
        ),
        "models_match",
    ),
    "non_idempotent_data_step": Broken(
        History(r2_downgrade='    op.drop_column("items", "qty")'), "no_trace"
    ),
    "index_created_twice": Broken(
        History(
            third={
                "r3": (
                    "index on name, again",
                    '    op.create_index("ix_items_name", "items", ["name"])',
                    '    op.drop_index("ix_items_name", "items")',
                )
            }
        ),
        "upgrade",
    ),
    "downgrade_drops_what_is_not_there": Broken(
        History(r2_downgrade=R2_DOWNGRADE + '\n    op.drop_index("ix_items_qty", "items")'),
        "downgrade",
    ),
    "data_step_needs_a_live_connection": Broken(
        History(
            r2_upgrade='    op.add_column("items", sa.Column("qty", sa.Integer))\n'
            '    seeded = op.get_bind().execute(sa.text("SELECT count(*) FROM items")).scalar()\n'
            "    if not seeded:\n"
            "        op.execute(\"INSERT INTO items (id, name) VALUES (1, 'seed')\")"
        ),
        "offline_sql",
    ),
    "model_type_differs": Broken(History(name_length=100), "models_match"),
    "parent_revision_missing": Broken(History(r2_parent="r0_deleted"), "history"),
    "concurrent_index_inside_a_transaction": Broken(
        History(
            third={
                "r3": (
                    "index on qty, concurrently",
                    '    op.create_index("ix_items_qty", "items", ["qty"], '
                    "postgresql_concurrently=True)",
                    '    op.drop_index("ix_items_qty", "items")',
                )
            },
            extra_tables='Index("ix_items_qty", items.c.qty)',
        ),
        "upgrade",
        on_sqlite=False,  # SQLite has no CONCURRENTLY: the option is ignored there
    ),
}


def lay_down(root: Path, history: History) -> Path:
    """A project with ``history`` under ``root``; returns its alembic.ini."""
    models = MODELS.format(
        name_length=history.name_length,
        extra_columns=history.extra_columns,
        extra_tables=history.extra_tables,
    )
    package = make_project(root, models)
    result = init_project(metadata=f"{package}.models:metadata", project_root=root)
    versions = result.directory / "versions"
    (versions / "r1_items.py").write_text(textwrap.dedent(R1))
    (versions / "r2_qty.py").write_text(
        R2.format(
            parent=history.r2_parent, upgrade=history.r2_upgrade, downgrade=history.r2_downgrade
        )
    )
    for revision, (doc, up, down) in history.third.items():
        (versions / f"{revision}.py").write_text(
            R3.format(doc=doc, revision=revision, upgrade=up, downgrade=down)
        )
    return result.config
