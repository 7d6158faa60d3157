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

The header of the run names where PostgreSQL and NATS come from, and a line says so when
a throwaway server is started. Throwaway servers are stopped at the end, on SIGTERM, and
at interpreter exit, so an interrupted run leaves none behind.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from qxdb.core.blocking import run_blocking
from qxdb.testing.servers import NoServer, Server, find_nats, find_postgres, stop_all

T = TypeVar("T")


def _require(env: str) -> bool:
    return os.environ.get(env, "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str, env: str) -> None:
    if _require(env):
        pytest.fail(f"{reason} (and {env}=1)", pytrace=False)
    pytest.skip(reason)


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    return run_blocking(coro)


_pg: dict[str, Any] = {}


def _announce(config: pytest.Config, server: Server, what: str) -> None:
    """Say so when a test server was started rather than given (it takes seconds)."""
    if server.how.startswith("QXDB_TEST_"):
        return
    from qxdb.urls import display_url

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"qxdb: started a throwaway {what} ({server.how}) at {display_url(server.url)} "
            "for this run; it is stopped at the end"
        )


@pytest.fixture(scope="session")
def qxdb_postgres_server(pytestconfig: pytest.Config) -> Server:
    if "server" not in _pg and "reason" not in _pg:
        try:
            _pg["server"] = find_postgres()
            _announce(pytestconfig, _pg["server"], "PostgreSQL")
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
def qxdb_nats_url(pytestconfig: pytest.Config) -> str:
    if "server" not in _nats and "reason" not in _nats:
        try:
            _nats["server"] = find_nats()
            _announce(pytestconfig, _nats["server"], "NATS JetStream")
        except NoServer as exc:
            _nats["reason"] = str(exc)
    if "reason" in _nats:
        _unavailable(_nats["reason"], "QXDB_REQUIRE_NATS")
    return str(_nats["server"].url)


def _source(env: str, fallback: str) -> str:
    from qxdb.urls import display_url

    value = os.environ.get(env, "").strip()
    if value:
        return f"{display_url(value)} (from {env})"
    return f"{fallback} ({env} is not set)"


def pytest_report_header(config: pytest.Config) -> str:
    """One line: where this run's PostgreSQL and NATS come from."""
    postgres = _source(
        "QXDB_TEST_DATABASE_URL",
        "testcontainers if Docker answers, else a throwaway initdb cluster, on first use",
    )
    nats = _source("QXDB_TEST_NATS_URL", "a throwaway nats-server -js, on first use")
    return f"qxdb test servers: PostgreSQL {postgres}; NATS {nats}"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # The default SIGTERM ends the process at once: no session finish, so a throwaway
    # cluster would keep running. Stop what we started, then die of the signal as before.
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: the feature exists only on PostgreSQL")
    atexit.register(stop_all)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
