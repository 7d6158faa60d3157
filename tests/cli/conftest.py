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
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    url: str | None = None,
    program: str = QXDB,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `qxdb` (or `program`) as a user would, with a clean QX_DB__ environment.

    ``url`` becomes ``QX_DB__URL``; stdin is empty unless ``input`` is given, as in CI.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith("QX_DB__")}
    base.update({"NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    if url is not None:
        base["QX_DB__URL"] = url
    base.update(env or {})
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        [program, *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=120, **stdin
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
