"""pytest fixtures for real databases (and NATS), one isolated database per test.

=========================  ========  ==================================================
fixture                    scope     gives
=========================  ========  ==================================================
``qxdb_postgres_server``   session   a PostgreSQL server (see :mod:`qxdb.testing.servers`)
``postgres_url``           function  URL of a fresh, empty PostgreSQL database (dropped after)
``sqlite_url``             function  URL of a fresh SQLite file in ``tmp_path``
``db_url``                 function  parametrized: ``sqlite`` and ``postgresql``
``engine``                 function  an ``AsyncEngine`` on ``db_url`` (disposed after)
``session_factory``        function  a session factory on ``engine``
``qxdb_nats_url``          session   URL of a NATS server with JetStream
=========================  ========  ==================================================

Without a server the PostgreSQL (or NATS) tests are skipped with the reason;
``QXDB_REQUIRE_POSTGRES=1`` (``QXDB_REQUIRE_NATS=1``) turns that skip into a failure, as CI
needs. Tests marked ``postgres_only`` run only on the PostgreSQL side of ``db_url``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from qxdb.testing.servers import NoServer, Server, find_nats, find_postgres

T = TypeVar("T")


def _require(env: str) -> bool:
    return os.environ.get(env, "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str, env: str) -> None:
    if _require(env):
        pytest.fail(f"{reason} (and {env}=1)", pytrace=False)
    pytest.skip(reason)


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


_pg: dict[str, Any] = {}


@pytest.fixture(scope="session")
def qxdb_postgres_server() -> Server:
    if "server" not in _pg and "reason" not in _pg:
        try:
            _pg["server"] = find_postgres()
        except NoServer as exc:
            _pg["reason"] = str(exc)
    if "reason" in _pg:
        _unavailable(_pg["reason"], "QXDB_REQUIRE_POSTGRES")
    server: Server = _pg["server"]
    return server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    server = _pg.pop("server", None)
    if server is not None:
        server.stop()
    nats = _nats.pop("server", None)
    if nats is not None:
        nats.stop()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    query = url.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url(qxdb_postgres_server: Server) -> Iterator[str]:
    """A fresh database on the test server, dropped after the test."""
    name = f"qxdb_t_{uuid.uuid4().hex[:16]}"
    # CREATE DATABASE takes no bind parameter: quote the name by PostgreSQL's rule (double
    # any embedded quote) rather than trusting it to need none.
    quoted = '"' + name.replace('"', '""') + '"'
    run_coro(_admin(qxdb_postgres_server.url, f"CREATE DATABASE {quoted}"))
    try:
        yield _with_database(qxdb_postgres_server.url, name)
    finally:
        run_coro(_admin(qxdb_postgres_server.url, f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("PostgreSQL-only feature")
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    from qxdb.engine import create_engine
    from qxdb.settings import DatabaseSettings

    eng = create_engine(DatabaseSettings(statement_timeout_ms=None), url=db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def session_factory(engine: Any) -> Any:
    from qxdb.engine import make_session_factory

    return make_session_factory(engine)


_nats: dict[str, Any] = {}


@pytest.fixture(scope="session")
def qxdb_nats_url() -> str:
    if "server" not in _nats and "reason" not in _nats:
        try:
            _nats["server"] = find_nats()
        except NoServer as exc:
            _nats["reason"] = str(exc)
    if "reason" in _nats:
        _unavailable(_nats["reason"], "QXDB_REQUIRE_NATS")
    return str(_nats["server"].url)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: the feature exists only on PostgreSQL")
