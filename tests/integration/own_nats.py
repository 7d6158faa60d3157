"""A private nats-server for one test: its own port, config and JetStream store, so a
test can shrink ``max_payload`` or stop and restart the broker without touching the
shared server other tests use."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qxdb.testing.servers import _wait_for_port, free_port


class OwnNats:
    """``start()``, ``stop()`` and ``start()`` again on the same port and store."""

    def __init__(self, folder: Path, *, max_payload: int | None = None) -> None:
        binary = shutil.which("nats-server") or (
            "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
        )
        if binary is None:
            pytest.skip("these tests start their own nats-server, and there is none")
        self.binary = binary
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.config = folder / "nats.conf"
        lines = [f"listen: 127.0.0.1:{self.port}", f'jetstream {{ store_dir: "{folder / "js"}" }}']
        if max_payload is not None:
            lines.append(f"max_payload: {max_payload}")
        self.config.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_for_port(self.port, 10):
            self.stop()
            raise RuntimeError("the test's own nats-server did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None


@contextlib.contextmanager
def own_nats(folder: Path, *, max_payload: int | None = None) -> Iterator[OwnNats]:
    """A started private server, killed when the block ends."""
    server = OwnNats(folder, max_payload=max_payload)
    server.start()
    try:
        yield server
    finally:
        server.stop()
