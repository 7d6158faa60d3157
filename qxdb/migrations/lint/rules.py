"""The migration lint rules: what each one catches, why it matters, and the safe recipe.

Each rule is data here; the checks that raise them live in :mod:`.checks`. Ids are stable
(``QXM001`` …) so suppressions and configuration keep working when rules are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qxdb.conventions.findings import Severity

__all__ = ["RULES", "LintRule", "rule_by_ref"]


@dataclass(frozen=True, slots=True)
class LintRule:
    id: str
    name: str
    severity: Severity | None  # None: off unless configuration turns it on
    summary: str
    locks: str  # what the statement locks or rewrites on PostgreSQL
    why: str
    recipe: str
    # False: the hazard exists only for a table that already holds rows, so a table
    # created earlier in the same revision is exempt.
    new_tables_too: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "severity": str(self.severity) if self.severity else "off",
            "summary": self.summary,
            "locks": self.locks,
            "why": self.why,
            "recipe": self.recipe,
        }


_E, _W = Severity.ERROR, Severity.WARNING

_ALL = [
    LintRule(
        "QXM001",
        "create-index-not-concurrently",
        _E,
        "index created without CONCURRENTLY on an existing table",
        "SHARE lock on the table for the whole build: every INSERT, UPDATE and DELETE waits",
        "Building an index reads the whole table; without CONCURRENTLY writes stop until it ends.",
        "create it in `with op.get_context().autocommit_block():` with "
        "`postgresql_concurrently=True`",
    ),
    LintRule(
        "QXM002",
        "drop-index-not-concurrently",
        _E,
        "index dropped without CONCURRENTLY on an existing table",
        "ACCESS EXCLUSIVE lock on the table: reads and writes wait, and so does everything "
        "queued behind it",
        "DROP INDEX waits behind any open transaction on the table while blocking all others.",
        "drop it in `with op.get_context().autocommit_block():` with "
        "`postgresql_concurrently=True`",
    ),
    LintRule(
        "QXM003",
        "concurrently-in-transaction",
        _E,
        "CONCURRENTLY inside the migration's transaction",
        "PostgreSQL refuses it: 'CREATE INDEX CONCURRENTLY cannot run inside a transaction block'",
        "Alembic runs each revision in a transaction on PostgreSQL; the migration fails at deploy.",
        "wrap the operation in `with op.get_context().autocommit_block():`",
        new_tables_too=True,
    ),
    LintRule(
        "QXM004",
        "foreign-key-not-valid",
        _E,
        "foreign key added to an existing table without NOT VALID",
        "SHARE ROW EXCLUSIVE lock on both tables while every row is checked: writes stop",
        "Validating a foreign key scans the whole table under a lock that blocks writes on it "
        "and on the referenced table.",
        "add it with `postgresql_not_valid=True`, then `ALTER TABLE … VALIDATE CONSTRAINT …` in "
        "a later revision (VALIDATE takes only a SHARE UPDATE EXCLUSIVE lock)",
    ),
    LintRule(
        "QXM005",
        "check-not-valid",
        _E,
        "CHECK constraint added to an existing table without NOT VALID",
        "ACCESS EXCLUSIVE lock while every row is checked: reads and writes stop",
        "Adding a validated CHECK scans the whole table under the strongest lock.",
        "add it with `postgresql_not_valid=True`, then `ALTER TABLE … VALIDATE CONSTRAINT …` in "
        "a later revision",
    ),
    LintRule(
        "QXM006",
        "set-not-null",
        _E,
        "SET NOT NULL on an existing column without a validated CHECK (col IS NOT NULL)",
        "ACCESS EXCLUSIVE lock while the whole table is scanned",
        "PostgreSQL proves NOT NULL by reading every row unless a validated CHECK "
        "(col IS NOT NULL) already proves it (PostgreSQL 12+).",
        "add `CHECK (col IS NOT NULL) NOT VALID`, VALIDATE it in a later revision, then "
        "SET NOT NULL (no scan) and drop the check",
    ),
    LintRule(
        "QXM007",
        "not-null-column-without-default",
        _E,
        "NOT NULL column added to an existing table without a server default",
        "fails outright on a table that has rows (the new column would be NULL)",
        "The revision passes on an empty development database and fails in production.",
        "add it nullable, backfill in batches, then set NOT NULL (QXM006's recipe), or give it "
        "a constant `server_default`",
    ),
    LintRule(
        "QXM008",
        "volatile-default",
        _E,
        "column added with a volatile default (random(), gen_random_uuid(), clock_timestamp(), "
        "serial, identity, a stored generated column)",
        "ACCESS EXCLUSIVE lock while the table is rewritten, one new value per row",
        "Constant defaults are stored once (PostgreSQL 11+); volatile ones are evaluated for "
        "every existing row, rewriting the table.",
        "add the column without a default, set the default separately (applies to new rows "
        "only), and backfill existing rows in batches",
    ),
    LintRule(
        "QXM009",
        "column-type-change",
        _E,
        "column type changed on an existing table",
        "ACCESS EXCLUSIVE lock and, for most changes, a rewrite of the table and its indexes",
        "Reads and writes stop for the whole rewrite; only a few changes (varchar(n) to a "
        "larger n or to text) are metadata-only.",
        "add a new column of the new type, write both from the app, backfill in batches, "
        "switch reads, then drop the old column",
    ),
    LintRule(
        "QXM010",
        "rename-column",
        _E,
        "column renamed",
        "brief ACCESS EXCLUSIVE lock; the running app's queries fail at once",
        "The app version deployed before this migration still names the old column.",
        "add the new column, write both, backfill, switch reads, then drop the old one "
        "(or use a view during the transition)",
    ),
    LintRule(
        "QXM011",
        "rename-table",
        _E,
        "table renamed",
        "brief ACCESS EXCLUSIVE lock; the running app's queries fail at once",
        "The app version deployed before this migration still names the old table.",
        "create the new table (or an updatable view under the new name), migrate the app, "
        "then drop the old name",
    ),
    LintRule(
        "QXM012",
        "drop-column",
        _W,
        "column dropped",
        "brief ACCESS EXCLUSIVE lock; the running app may still read or write the column",
        "An app version that still selects or inserts the column breaks the moment it is gone.",
        "first deploy code that no longer uses the column (SQLAlchemy: remove it from the "
        "model), then drop it in a later release; suppress with the reason once that is done",
    ),
    LintRule(
        "QXM013",
        "drop-table",
        _W,
        "table dropped",
        "ACCESS EXCLUSIVE lock; the running app may still use the table",
        "Data is gone for good and any code still using the table fails.",
        "first deploy code that no longer uses the table, take a backup, then drop it in a "
        "later release; suppress with the reason once that is done",
    ),
    LintRule(
        "QXM014",
        "unique-constraint-without-index",
        _E,
        "unique constraint added to an existing table without a prior unique index",
        "ACCESS EXCLUSIVE lock while a unique index is built over the whole table",
        "ADD CONSTRAINT … UNIQUE builds its index under the strongest lock.",
        "`CREATE UNIQUE INDEX CONCURRENTLY` (autocommit block), then "
        "`ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX …`",
    ),
    LintRule(
        "QXM015",
        "primary-key-on-existing-table",
        _E,
        "primary key added to an existing table",
        "ACCESS EXCLUSIVE lock while the key's index is built (and NOT NULL is checked)",
        "Same as a unique constraint, plus a NOT NULL scan of the key columns.",
        "`CREATE UNIQUE INDEX CONCURRENTLY`, then "
        "`ALTER TABLE … ADD CONSTRAINT … PRIMARY KEY USING INDEX …`",
    ),
    LintRule(
        "QXM016",
        "int-primary-key",
        _W,
        "serial / integer primary key",
        "nothing now; running out of 2^31 ids later means a type change that rewrites the table",
        "int4 keys overflow on busy tables, and fixing it then is QXM009 on the biggest table.",
        "use `sa.BigInteger` with `sa.Identity()` (bigint identity) or a UUID key",
        new_tables_too=True,
    ),
    LintRule(
        "QXM017",
        "timestamp-without-time-zone",
        _W,
        "timestamp without time zone",
        "nothing now; fixing it later is a type change",
        "Values lose their offset and depend on the session's TimeZone setting.",
        "use `sa.DateTime(timezone=True)` (timestamptz)",
        new_tables_too=True,
    ),
    LintRule(
        "QXM018",
        "char-column",
        _W,
        "char(n) column",
        "nothing now; values are blank-padded to n characters",
        "char(n) pads, compares oddly and is no faster than text or varchar in PostgreSQL.",
        "use `sa.Text` (with a CHECK on length if needed) or `sa.String`",
        new_tables_too=True,
    ),
    LintRule(
        "QXM019",
        "varchar-length",
        None,
        "varchar(n) column (off by default)",
        "nothing now; raising n later takes an ACCESS EXCLUSIVE lock",
        "A length limit is a business rule stored in the type; changing it is a migration. "
        "Off by default because most models use String(n) on purpose.",
        "use `sa.Text` with a CHECK (length(col) <= n), which can be changed NOT VALID",
        new_tables_too=True,
    ),
    LintRule(
        "QXM020",
        "enum-add-value-in-transaction",
        _E,
        "enum value added and used in the same transaction",
        "PostgreSQL refuses the use: 'unsafe use of new value' (before PostgreSQL 12, the "
        "ADD VALUE itself fails inside a transaction)",
        "ALTER TYPE … ADD VALUE is not visible until its transaction commits; a revision that "
        "adds a value and then writes it fails at deploy.",
        "add the value in `with op.get_context().autocommit_block():` (or in its own "
        "revision) before the statements that use it",
        new_tables_too=True,
    ),
    LintRule(
        "QXM021",
        "unbatched-data-change",
        _E,
        "UPDATE or DELETE without a WHERE clause on an existing table",
        "ROW EXCLUSIVE lock plus a row lock on every row until the migration commits",
        "One statement over the whole table holds row locks for minutes, bloats the table and "
        "writes a burst of WAL that replicas must replay.",
        "backfill in batches (`WHERE id BETWEEN :lo AND :hi`, committing between batches) "
        "outside the DDL revision, or from a script",
    ),
    LintRule(
        "QXM022",
        "missing-lock-timeout",
        _W,
        "lock-taking DDL on an existing table without a lock_timeout",
        "the ALTER queues behind any long transaction while every later query queues behind it",
        "Without lock_timeout a migration waiting for its lock takes the whole table down with it.",
        "start the revision with `op.execute(\"SET lock_timeout = '5s'\")`, or run migrations "
        "through qxdb's env.py (`run_async_migrations`), which sets one on the connection",
    ),
    LintRule(
        "QXM023",
        "ddl-with-backfill",
        _W,
        "schema change and data backfill in the same revision",
        "the DDL's locks are held until the backfill commits",
        "The revision's single transaction keeps the ALTER's ACCESS EXCLUSIVE lock for as long "
        "as the data change runs.",
        "put the backfill in its own revision (or a script) after the schema change",
    ),
    LintRule(
        "QXM024",
        "suppression-without-reason",
        _E,
        "lint-ignore comment without a reason, or naming an unknown rule",
        "nothing: a finding about the revision file itself",
        "A silenced hazard needs a reason a reviewer can judge.",
        "write `# qxdb: lint-ignore[QXM007] <why this is safe here>`",
        new_tables_too=True,
    ),
    LintRule(
        "QXM025",
        "not-analysed",
        _W,
        "revision could not be fully analysed offline",
        "unknown",
        "upgrade() raised while its operations were recorded offline (it may read from the "
        "database through op.get_bind()); operations after that point were not checked.",
        "keep data reads out of revisions, or review this revision by hand and suppress it",
        new_tables_too=True,
    ),
]

RULES: dict[str, LintRule] = {r.id: r for r in _ALL}
_BY_NAME = {r.name: r for r in _ALL}


def rule_by_ref(ref: str) -> LintRule | None:
    """A rule by id (``QXM004``, any case) or by name (``foreign-key-not-valid``)."""
    text = ref.strip()
    return RULES.get(text.upper()) or _BY_NAME.get(text.lower())
