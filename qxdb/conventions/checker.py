"""Run the rules over a ``MetaData`` or a live database and gather the findings.

This is a read-only operation: a live database is only reflected, never written.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.schema import DEFAULT_NAMING_CONVENTION

from qxdb.conventions.catalog import Catalog, read_catalog
from qxdb.conventions.config import SchemaConfig
from qxdb.conventions.findings import CheckReport, Finding
from qxdb.conventions.from_database import snapshot_database, table_names
from qxdb.conventions.from_metadata import POSTGRESQL, snapshot_table
from qxdb.conventions.rules import CheckContext, Rule, Source, Violation
from qxdb.conventions.snapshot import TableSnapshot
from qxdb.errors import ConfigurationError
from qxdb.mapping import NAMING_CONVENTION, make_metadata
from qxdb.metadata_import import import_models
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings

__all__ = [
    "check_connection",
    "check_database",
    "check_import_path",
    "check_metadata",
    "load_metadata",
]


def _naming(metadata: MetaData | None) -> dict[str, str]:
    """The metadata's own convention; qxdb's when it has none (or for a live database)."""
    if metadata is None or dict(metadata.naming_convention) == dict(DEFAULT_NAMING_CONVENTION):
        return dict(NAMING_CONVENTION)
    return {
        k: v
        for k, v in metadata.naming_convention.items()
        if isinstance(k, str) and isinstance(v, str)
    }


def _outbox_reference(dialect: Dialect) -> Callable[[str], TableSnapshot]:
    def build(name: str) -> TableSnapshot:
        return snapshot_table(include_outbox_table(make_metadata(), name), dialect)

    return build


def run_rules(
    snapshots: Iterable[TableSnapshot],
    *,
    source: Source,
    dialect: Dialect,
    naming: dict[str, str],
    config: SchemaConfig,
    target: str,
    source_file: str | None = None,
    catalog: Catalog | None = None,
    connection: Connection | None = None,
) -> CheckReport:
    tables = {s.name: s for s in snapshots if not config.skips(s.name)}
    ctx = CheckContext(
        source=source,
        dialect=dialect,
        tables=tables,
        naming=naming,
        outbox_reference=_outbox_reference(dialect),
        catalog=catalog,
        connection=connection,
    )
    rules = [(r, config.severity(r)) for r in config.active_rules() if source in r.sources]
    report = CheckReport(
        source=source,
        target=target,
        tables=sorted(tables),
        rules=[r.id for r, _ in rules],
        source_file=source_file,
    )
    for table in sorted(tables.values(), key=lambda t: t.name):
        configured = config.ignores.get(table.name, {})
        for rule, severity in rules:
            if severity is None or not rule.applies_to(table, source):
                continue
            reason = table.ignores.get(rule.id) or configured.get(rule.id)
            for violation in _violations(rule, table, ctx):
                finding = Finding(
                    rule_id=rule.id,
                    rule_name=rule.name,
                    severity=severity,
                    table=table.name,
                    message=violation.message,
                    hint=rule.hint,
                    subject=violation.subject,
                    ignored_reason=reason,
                )
                (report.ignored if reason else report.findings).append(finding)
    return report


def _violations(rule: Rule, table: TableSnapshot, ctx: CheckContext) -> list[Violation]:
    try:
        return list(rule.check(table, ctx))
    except Exception as exc:
        if rule.origin == "qxdb":
            raise  # our own bug: the traceback (with --debug) is what we need
        # A plugin's failure is named as such, in one line, not as a qxdb crash.
        raise ConfigurationError(
            f"schema rule {rule.id} {rule.name} (from {rule.origin}) failed on table "
            f"{table.name}: {type(exc).__name__}: {exc}"
        ) from exc


def check_metadata(
    metadata: MetaData,
    config: SchemaConfig | None = None,
    *,
    target: str = "metadata",
    source_file: str | None = None,
) -> CheckReport:
    """Check every table of ``metadata``, as PostgreSQL would store it."""
    config = config or SchemaConfig()
    # Table.info ignores are validated up front so a typo'd rule id is a usage error.
    from qxdb.conventions.config import resolve_rule

    snapshots = [snapshot_table(t, POSTGRESQL) for t in metadata.tables.values()]
    for snap in snapshots:
        snap.ignores = {
            resolve_rule(ref, where=f"Table.info of {snap.name}").id: reason
            for ref, reason in snap.ignores.items()
        }
    return run_rules(
        snapshots,
        source="metadata",
        dialect=POSTGRESQL,
        naming=_naming(metadata),
        config=config,
        target=target,
        source_file=source_file,
    )


def check_connection(
    conn: Connection,
    config: SchemaConfig | None = None,
    *,
    schema: str | None = None,
    outbox_tables: Collection[str] = (),
    target: str = "database",
) -> CheckReport:
    """Check a live database through a synchronous connection (``run_sync`` gives one)."""
    config = config or SchemaConfig()
    dialect = conn.dialect
    source: Source = "sqlite" if dialect.name == "sqlite" else "postgresql"
    names = table_names(conn, schema=schema, skip=config.skips)
    # On PostgreSQL the catalog is always read: the health rules judge it, and its index
    # facts replace SQLAlchemy's slower index reflection.
    catalog = read_catalog(conn, schema=schema, tables=names) if source == "postgresql" else None
    snapshots = snapshot_database(
        conn,
        schema=schema,
        names=names,
        outbox_tables={*outbox_tables, *config.outbox_tables},
        catalog=catalog,
    )
    return run_rules(
        snapshots,
        source=source,
        dialect=dialect,
        naming=dict(NAMING_CONVENTION),
        config=config,
        target=target,
        catalog=catalog,
        connection=conn,
    )


async def check_database(
    settings: DatabaseSettings,
    config: SchemaConfig | None = None,
    *,
    schema: str | None = None,
) -> CheckReport:
    """Reflect the database ``settings`` point at and check every table.

    The table named by ``settings.outbox_table`` (and ``outbox-tables`` in the config) is
    checked against the outbox shape. Unreachable: :class:`DatabaseUnavailableError`.
    """
    from qxdb.engine import connect_checked, create_engine

    engine = create_engine(settings)
    try:
        async with connect_checked(engine) as conn:
            return await conn.run_sync(
                lambda sync: check_connection(
                    sync,
                    config,
                    schema=schema,
                    outbox_tables=(settings.outbox_table,),
                    target=settings.display_url,
                )
            )
    finally:
        await engine.dispose()


def check_import_path(path: str, config: SchemaConfig | None = None) -> CheckReport:
    """Import ``package.module:metadata`` and check it (``qxdb schema check --metadata``)."""
    metadata, source_file = load_metadata(path)
    return check_metadata(metadata, config, target=path, source_file=source_file)


def load_metadata(path: str) -> tuple[MetaData, str | None]:
    """Import ``package.module:attribute`` (:func:`qxdb.metadata_import.import_models`, from
    the current directory) and return the MetaData and its module's file."""
    value, module = import_models(path)
    cwd = os.getcwd()
    file = inspect.getsourcefile(module) if hasattr(module, "__file__") else None
    if file is not None:
        with contextlib.suppress(ValueError):
            file = str(Path(file).resolve().relative_to(Path(cwd).resolve()))
    return value, file
