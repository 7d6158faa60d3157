"""The test servers, for the person running the tests: pytest names where PostgreSQL and
NATS come from, and a run stopped with SIGTERM leaves no throwaway server running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qxdb.testing.servers import _pg_bin

INNER = """
import os
import time
from pathlib import Path


def test_hold_the_servers(qxdb_postgres_server, qxdb_nats_url):
    out = Path(os.environ["QXDB_PROBE_OUT"])
    out.with_suffix(".tmp").write_text(qxdb_postgres_server.url + "\\n" + qxdb_nats_url)
    out.with_suffix(".tmp").rename(out)
    time.sleep(300)
"""


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_leaves_no_throwaway_server(tmp_path: Path) -> None:
    if not _pg_bin("initdb"):
        pytest.skip("no initdb here: no throwaway PostgreSQL to leave behind")
    (tmp_path / "test_inner.py").write_text(INNER)
    probe = tmp_path / "servers.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QXDB_")}
    env["QXDB_PROBE_OUT"] = str(probe)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "qxdb.testing.plugin", "-s", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not probe.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the inner run never got its servers:\n{proc.communicate()[0]}")
            time.sleep(0.1)
        postgres, nats = probe.read_text().splitlines()
        assert _answers(postgres) and _answers(nats)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM, output
    assert not _answers(postgres), f"PostgreSQL still runs at {postgres}"
    assert not _answers(nats), f"NATS still runs at {nats}"
    # The run said where its servers came from.
    assert "qxdb test servers: PostgreSQL testcontainers if Docker answers" in output
    assert "(QXDB_TEST_DATABASE_URL is not set)" in output
    assert "qxdb: started a throwaway PostgreSQL (initdb)" in output
    assert "qxdb: started a throwaway NATS JetStream (nats-server)" in output
