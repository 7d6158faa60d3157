"""``diagnose``: can we reach the database, and what is there? (``qxdb doctor``)

This is a read-only operation: it connects, asks the server for its version and looks
for the outbox and Alembic tables. It writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import inspect

from qxdb.core.identifiers import split_qualified
from qxdb.engine import connect_checked, create_engine, server_version
from qxdb.settings import DatabaseSettings

__all__ = ["DoctorReport", "diagnose"]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            )
    finally:
        await engine.dispose()
