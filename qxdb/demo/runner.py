"""``run_demo``: a small service, end to end, on the real code paths.

It writes an example service into a workspace folder, scaffolds its migrations with the
code behind ``qxdb migrate init``, autogenerates and applies the first revision, places
orders through the unit of work (so the outbox fills), reads the outbox, pages orders
with a keyset cursor and checks the schema conventions. Nothing is canned: every figure
the command shows comes from the database. Running it again reuses the workspace.

The library never prints: each step is handed to ``on_step`` as it completes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from qxdb.core.defaults import DEMO_ORDERS
from qxdb.settings import DatabaseSettings

__all__ = ["DEMO_TENANT", "DemoReport", "DemoStep", "run_demo"]

DEMO_TENANT = UUID("0190a3b4-0000-7000-8000-00000000d3e0")
DEMO_USER = UUID("0190a3b4-0000-7000-8000-0000000000a1")
METADATA_PATH = "shop.models:metadata"
_SHOP_FILES = ("__init__.py", "models.py", "domain.py", "repositories.py")


@dataclass(frozen=True, slots=True)
class DemoStep:
    name: str
    title: str
    data: Any = None


@dataclass
class DemoReport:
    workspace: Path
    database: str
    steps: list[DemoStep] = field(default_factory=list)
    next_commands: list[str] = field(default_factory=list)


StepCallback = Callable[[DemoStep], None]


def prepare_workspace(workspace: Path, url: str | None) -> list[Path]:
    """Write the example service into ``workspace`` (files that already exist are kept)."""
    workspace.mkdir(parents=True, exist_ok=True)
    package = workspace / "shop"
    package.mkdir(exist_ok=True)
    source = Path(__file__).resolve().parent / "shop"
    written: list[Path] = []
    for name in _SHOP_FILES:
        target = package / name
        if not target.exists():
            shutil.copyfile(source / name, target)
            written.append(target)
    pyproject = workspace / "pyproject.toml"
    if not pyproject.exists():
        pyproject.write_text(
            '[project]\nname = "shop"\nversion = "0.1.0"\n\n'
            '[tool.qxdb.migrate]\nconfig = "migrations/alembic.ini"\n\n'
            f'[tool.qxdb.schema]\nmetadata = "{METADATA_PATH}"\n',
            encoding="utf-8",
        )
        written.append(pyproject)
    if url:
        # Later commands run in the workspace read the URL from here, as a service would.
        env = workspace / ".env"
        env.write_text(f"QX_DB__URL={url}\n", encoding="utf-8")
        os.chmod(env, 0o600)
        written.append(env)
    return written


def workspace_settings(workspace: Path, url: str | None) -> DatabaseSettings:
    base = DatabaseSettings(_env_file=None)
    return base.with_url(url or f"sqlite+aiosqlite:///{workspace / 'qxdb.sqlite3'}")


async def run_demo(
    workspace: Path,
    *,
    url: str | None = None,
    orders: int = DEMO_ORDERS,
    on_step: StepCallback | None = None,
) -> DemoReport:
    workspace = workspace.resolve()  # noqa: ASYNC240 - once, before any database work
    settings = workspace_settings(workspace, url)
    report = DemoReport(workspace=workspace, database=settings.display_url)

    def step(name: str, title: str, data: Any = None) -> None:
        item = DemoStep(name, title, data)
        report.steps.append(item)
        if on_step is not None:
            on_step(item)

    written = prepare_workspace(workspace, url)
    step(
        "workspace",
        f"example service in {workspace}",
        [str(p.relative_to(workspace)) for p in written],
    )

    await _migrate(workspace, settings, step)
    await _place_orders(settings, orders, step)
    await _show_outbox(settings, step)
    await _page_orders(settings, step)
    await _check_schema(workspace, settings, step)
    report.next_commands = [
        f"cd {workspace}",
        "qxdb outbox stats",
        "qxdb outbox inspect --status pending --limit 10",
        "qxdb migrate current",
        "qxdb migrate check",
        "qxdb schema check",
        "qxdb outbox relay --nats-url nats://127.0.0.1:4222 --subject-prefix demo --once",
    ]
    return report


async def _migrate(
    workspace: Path, settings: DatabaseSettings, step: Callable[[str, str, Any], None]
) -> Path:
    from qxdb.migrations import check, heads, init_project, revision, upgrade

    config = workspace / "migrations" / "alembic.ini"
    if not config.exists():
        result = init_project(
            workspace / "migrations",
            metadata=METADATA_PATH,
            project_root=workspace,
            dialect=settings.dialect_name,
        )
        step(
            "migrate-init",
            "migrations scaffolded (qxdb migrate init)",
            [str(p.relative_to(workspace)) for p in result.files],
        )
    if not heads(config=config):
        created = await revision(
            "create shop tables", autogenerate=True, config=config, settings=settings
        )
        step(
            "migrate-revision",
            f"first revision autogenerated: {created.revision.revision}",
            created,
        )
    run = await upgrade("head", config=config, settings=settings)
    step("migrate-up", "database upgraded to head (qxdb migrate up)", run)
    report = await check(config=config, settings=settings)
    step("migrate-check", "models, revisions and database agree (qxdb migrate check)", report)
    return config


def _shop_repositories() -> tuple[type[Any], type[Any]]:
    from qxdb.demo.shop.repositories import CustomerRepository, OrderRepository

    return CustomerRepository, OrderRepository


async def _place_orders(
    settings: DatabaseSettings, orders: int, step: Callable[[str, str, Any], None]
) -> None:
    from qxdb.context import request_scope
    from qxdb.demo.shop.domain import Customer, Order
    from qxdb.engine import create_engine, make_session_factory
    from qxdb.outbox.recorder import DefaultOutboxRecorder
    from qxdb.query import OffsetPagination
    from qxdb.uow import UnitOfWork

    customer_repo, order_repo = _shop_repositories()
    engine = create_engine(settings)
    try:
        uow = UnitOfWork(
            make_session_factory(engine),
            outbox=DefaultOutboxRecorder(settings.outbox_table),
            repositories={"customers": customer_repo, "orders": order_repo},
        )
        with request_scope(tenant_id=DEMO_TENANT, user_id=DEMO_USER):
            async with uow.begin() as tx:
                known = (
                    await tx.customers.list(OffsetPagination(page_size=10, include_total=False))
                ).items
                if not known:
                    known = [
                        Customer(name=name, email=f"{name.lower()}@example.com")
                        for name in ("Ada", "Grace", "Linus")
                    ]
                    (await tx.customers.add_many(known)).value  # noqa: B018 - raises on failure
            placed: list[Order] = []
            for n in range(orders):
                # One unit of work per order, as a request handler would do it.
                async with uow.begin() as tx:
                    order = Order.place(
                        known[n % len(known)].id,
                        Decimal(17 * (n % 7) + 5) + Decimal(n % 4) / 4,
                        note=None if n % 5 == 0 else f"order #{n + 1}",
                    )
                    (await tx.orders.add(order)).value  # noqa: B018
                    placed.append(order)
            paid = 0
            for order in placed[::3]:
                async with uow.begin() as tx:
                    loaded = (await tx.orders.get(order.id)).value
                    loaded.pay()
                    (await tx.orders.save(loaded)).value  # noqa: B018
                    paid += 1
        step(
            "orders",
            f"{len(placed)} orders placed and {paid} paid through the unit of work "
            f"({len(placed) + paid} integration events written to the outbox in the same transactions)",
            {"placed": len(placed), "paid": paid},
        )
    finally:
        await engine.dispose()


async def _show_outbox(settings: DatabaseSettings, step: Callable[[str, str, Any], None]) -> None:
    from qxdb.outbox.selection import OutboxSelection
    from qxdb.outbox.store import open_outbox_store

    async with open_outbox_store(settings) as store:
        stats = await store.stats()
        step("outbox-stats", "outbox statistics (qxdb outbox stats)", stats)
        page = await store.list_rows(OutboxSelection(status="pending"), limit=8)
        step(
            "outbox-inspect",
            "the first pending outbox rows (qxdb outbox inspect --status pending)",
            page,
        )


async def _page_orders(settings: DatabaseSettings, step: Callable[[str, str, Any], None]) -> None:
    from qxdb.context import request_scope
    from qxdb.cursor import decode_cursor
    from qxdb.engine import create_engine, make_session_factory
    from qxdb.query import CursorPagination, Sort
    from qxdb.uow import UnitOfWork

    _, order_repo = _shop_repositories()
    engine = create_engine(settings)
    try:
        uow = UnitOfWork(make_session_factory(engine), repositories={"orders": order_repo})
        sort = (Sort("total", "desc"), Sort("note", "asc"))
        with request_scope(tenant_id=DEMO_TENANT):
            async with uow.begin() as tx:
                first = await tx.orders.list_cursor(CursorPagination(limit=5, sort=sort))
                second = None
                if first.next_cursor:
                    second = await tx.orders.list_cursor(
                        CursorPagination(limit=5, sort=sort, cursor=first.next_cursor)
                    )
        step(
            "keyset-page",
            "orders by total (desc), note (asc, NULLs last): a keyset page of 5",
            first,
        )
        if first.next_cursor:
            step(
                "cursor-decode",
                "its next cursor, decoded (qxdb cursor decode)",
                {"token": first.next_cursor, "values": decode_cursor(first.next_cursor)},
            )
        if second is not None:
            step("keyset-page-2", "the page that cursor leads to", second)
    finally:
        await engine.dispose()


async def _check_schema(
    workspace: Path, settings: DatabaseSettings, step: Callable[[str, str, Any], None]
) -> None:
    from qxdb.conventions import check_database, check_metadata
    from qxdb.demo.shop.models import metadata

    on_models = check_metadata(metadata)
    step(
        "schema-models",
        "schema conventions on the models (qxdb schema check --metadata)",
        on_models,
    )
    on_database = await check_database(settings)
    step(
        "schema-database",
        "schema conventions on the live database (qxdb schema check --database)",
        on_database,
    )
