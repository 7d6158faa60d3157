from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qxdb.testing.servers import NoServer, ThrowawayPostgres

QXDB = str(Path(sys.executable).with_name("qxdb"))


def run_qxdb(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `qxdb` command as a user would, with a clean QX_DB__ environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    base["NO_COLOR"] = "1"
    base.update(env or {})
    return subprocess.run(
        [QXDB, *args], cwd=cwd, env=base, input=input, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="session")
def password_postgres() -> Iterator[ThrowawayPostgres]:
    """A private cluster that really checks passwords (the shared test server trusts everyone)."""
    try:
        cluster = ThrowawayPostgres(password="correct-horse-9")
    except NoServer as exc:
        if os.environ.get("QXDB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"cannot start a password-checking PostgreSQL: {exc}")
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()
