"""Finding or starting a PostgreSQL server and a NATS JetStream server for tests.

PostgreSQL, in this order: ``QXDB_TEST_DATABASE_URL``; a testcontainers PostgreSQL where
a Docker engine answers; a throwaway cluster made with the local ``initdb``/``pg_ctl``;
otherwise no server, with the reason. NATS: ``QXDB_TEST_NATS_URL``; a throwaway
``nats-server -js``; otherwise no server, with the reason.

Every server started here is registered until it is stopped, so :func:`stop_all` (which
the pytest plugin calls on SIGTERM and at exit) never leaves a cluster running behind an
interrupted run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NoServer",
    "Server",
    "ThrowawayPostgres",
    "find_nats",
    "find_postgres",
    "free_port",
    "stop_all",
]

# id -> stop function of every server started by this process and not stopped yet.
_running: dict[int, Callable[[], None]] = {}


def _started(stop: Callable[[], None]) -> Callable[[], None]:
    """Register ``stop``; the returned function stops once and unregisters."""
    key = id(stop)

    def once() -> None:
        if _running.pop(key, None) is not None:
            stop()

    _running[key] = stop
    return once


def stop_all() -> None:
    """Stop every server this process started and has not stopped (idempotent)."""
    for key in list(_running):
        stop = _running.pop(key, None)
        if stop is not None:
            with contextlib.suppress(Exception):
                stop()


class NoServer(Exception):
    """No server could be found or started; the message says why."""


@dataclass
class Server:
    url: str
    how: str
    stop: Callable[[], None] = field(default=lambda: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return True
        time.sleep(0.05)
    return False


def asyncpg_url(url: str) -> str:
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temporary folder, on a free port.

    ``initdb`` refuses to run as root; as root the cluster is run as the ``postgres`` user
    through ``runuser`` when that user exists.
    """

    def __init__(self, *, password: str | None = None) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise NoServer("no initdb/pg_ctl on this machine")
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                raise NoServer(
                    "running as root and there is no 'postgres' user for initdb"
                ) from None
            if not runuser:
                raise NoServer("running as root and runuser is missing")
            self._prefix = [runuser, "-u", "postgres", "--"]
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qxdb-pg-"))
        os.chmod(self.dir, 0o777)
        data = self.dir / "data"
        auth = ["--auth=scram-sha-256"] if password else ["--auth=trust"]
        pwfile = self.dir / "pw"
        if password:
            pwfile.write_text(password)
            os.chmod(pwfile, 0o644)
            auth.append(f"--pwfile={pwfile}")
        self._pg_ctl = pg_ctl
        self._data = data
        self._run([initdb, "-D", str(data), "-U", "postgres", "--no-sync", "-E", "UTF8", *auth])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"])
        self.stop = _started(self._stop)  # type: ignore[method-assign]
        userinfo = f"postgres:{password}" if password else "postgres"
        self.url = f"postgresql+asyncpg://{userinfo}@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        try:
            subprocess.run([*self._prefix, *cmd], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise NoServer(
                f"{Path(cmd[0]).name} failed: {exc.stderr.decode(errors='replace').strip()[:300]}"
            ) from None

    def stop(self) -> None:
        """Stop the cluster and delete its folder (replaced per instance once started)."""
        self._stop()

    def _stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run([self._pg_ctl, "-D", str(self._data), "-m", "immediate", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


def _docker_answers() -> bool:
    if not shutil.which("docker") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def find_postgres() -> Server:
    """A PostgreSQL server whose URL can create databases; raises :class:`NoServer`."""
    env = os.environ.get("QXDB_TEST_DATABASE_URL")
    if env:
        return Server(asyncpg_url(env), "QXDB_TEST_DATABASE_URL")
    reasons: list[str] = ["QXDB_TEST_DATABASE_URL is not set"]
    if _docker_answers():
        try:
            from testcontainers.postgres import PostgresContainer

            container = PostgresContainer("postgres:16-alpine", driver="asyncpg")
            container.start()
            return Server(
                container.get_connection_url(), "testcontainers", _started(container.stop)
            )
        except Exception as exc:
            reasons.append(f"testcontainers failed: {exc}")
    else:
        reasons.append("no Docker engine answers")
    try:
        cluster = ThrowawayPostgres()
        return Server(cluster.url, "initdb", cluster.stop)
    except NoServer as exc:
        reasons.append(str(exc))
    raise NoServer("no PostgreSQL for tests: " + "; ".join(reasons))


def find_nats() -> Server:
    """A NATS server with JetStream; raises :class:`NoServer`."""
    env = os.environ.get("QXDB_TEST_NATS_URL")
    if env:
        return Server(env, "QXDB_TEST_NATS_URL")
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
    )
    if not binary:
        raise NoServer(
            "no NATS for tests: QXDB_TEST_NATS_URL is not set and there is no nats-server binary"
        )
    port = free_port()
    store = tempfile.mkdtemp(prefix="qxdb-nats-")
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not _wait_for_port(port, 10):
        proc.kill()
        raise NoServer("no NATS for tests: nats-server did not start")

    def stop() -> None:
        proc.terminate()
        with contextlib.suppress(Exception):
            proc.wait(5)
        shutil.rmtree(store, ignore_errors=True)

    return Server(f"nats://127.0.0.1:{port}", "nats-server", _started(stop))
