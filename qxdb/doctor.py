"""``diagnose``: can we reach the database, and what is there? (``qxdb doctor``)

This is a read-only operation: it connects, asks the server for its version and looks
for the outbox and Alembic tables. It writes nothing.

Besides the facts it reports warnings: settings that work but leave something open (for
now, cursors handed out unsigned because no ``QX_DB__CURSOR_SECRET`` is set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import inspect

from qxdb.core.identifiers import split_qualified
from qxdb.engine import connect_checked, create_engine, server_version
from qxdb.settings import DatabaseSettings

__all__ = ["UNSIGNED_CURSORS_WARNING", "DoctorReport", "diagnose", "setting_warnings"]

UNSIGNED_CURSORS_WARNING = (
    "cursors unsigned (no QX_DB__CURSOR_SECRET): a client can edit a cursor to start a page "
    "anywhere in the same listing; set a secret to sign them (docs/cursors.md)"
)


@dataclass(frozen=True, slots=True)
class DoctorReport:
    url: str
    url_is_default: bool
    dialect: str
    driver: str
    server_version: str
    pool: dict[str, Any]
    statement_timeout_ms: int | None
    outbox_table: str
    outbox_table_exists: bool
    alembic_version_table_exists: bool
    alembic_revision: list[str]
    cursors_signed: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def setting_warnings(settings: DatabaseSettings) -> list[str]:
    """What the settings leave open, one sentence each (no database needed)."""
    warnings: list[str] = []
    if settings.cursor_secret is None or not settings.cursor_secret.get_secret_value():
        warnings.append(UNSIGNED_CURSORS_WARNING)
    return warnings


async def diagnose(settings: DatabaseSettings) -> DoctorReport:
    engine = create_engine(settings)
    try:
        async with connect_checked(engine) as conn:
            version = await server_version(conn)
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            # QX_DB__OUTBOX_TABLE may be schema.name: look in that schema, not the default.
            schema, outbox = split_qualified(settings.outbox_table)
            outbox_exists = await conn.run_sync(
                lambda c: inspect(c).has_table(outbox, schema=schema)
            )
            revisions: list[str] = []
            if "alembic_version" in names:
                from sqlalchemy import column, select, table

                query: Any = select(column("version_num")).select_from(table("alembic_version"))
                revisions = sorted(str(v) for v in (await conn.execute(query)).scalars())
            pool = engine.pool
            pool_info: dict[str, Any] = {"kind": type(pool).__name__}
            if settings.pool_kind == "queue" and hasattr(pool, "size"):
                pool_info.update(
                    size=settings.pool_size,
                    max_overflow=settings.max_overflow,
                    timeout_seconds=settings.pool_timeout_seconds,
                    recycle_seconds=settings.pool_recycle_seconds,
                    pre_ping=settings.pool_pre_ping,
                )
            return DoctorReport(
                url=settings.display_url,
                url_is_default=settings.url_is_default,
                dialect=conn.dialect.name,
                driver=conn.dialect.driver,
                server_version=version,
                pool=pool_info,
                statement_timeout_ms=settings.statement_timeout_ms
                if conn.dialect.name == "postgresql"
                else None,
                outbox_table=settings.outbox_table,
                outbox_table_exists=bool(outbox_exists),
                alembic_version_table_exists="alembic_version" in names,
                alembic_revision=revisions,
                cursors_signed=UNSIGNED_CURSORS_WARNING not in setting_warnings(settings),
                warnings=setting_warnings(settings),
            )
    finally:
        await engine.dispose()
