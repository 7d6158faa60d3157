"""A new user's way through ``qxdb migrate``, as real ``qxdb`` processes, on both dialects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.migrate_support import ALEMBIC, make_project, ok, run


@pytest.mark.slow
def test_new_user_journey(db_url: str, tmp_path: Path) -> None:
    package = make_project(tmp_path)
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"

    def qxdb(*args: str, code: int = 0) -> str:
        return ok(run(tmp_path, *args, url=db_url), code).stdout

    qxdb("migrate", "init", "--metadata", f"{package}.models:metadata")
    ini = (tmp_path / "migrations" / "alembic.ini").read_text()
    assert "://" not in ini
    assert "sqlalchemy.url" not in ini

    created = qxdb("migrate", "revision", "-m", "create orders", "--autogenerate")
    assert "table orders is in the models but not in the database" in created
    path = next((tmp_path / "migrations" / "versions").glob("*_create_orders.py"))
    first_revision = path.name.split("_")[1]
    script = path.read_text()
    assert "qxdb.types.UTCDateTime()" in script
    assert "qxdb.types.JSONType()" in script
    assert "import qxdb.types" in script

    if dialect == "sqlite":  # offline SQL touches no database: once is enough
        assert "CREATE TABLE orders" in qxdb("migrate", "up", "--sql")

    assert "upgrade" in qxdb("migrate", "up")
    # The portable types must not read back as drift on either dialect.
    assert "ok: the database is at head" in qxdb("migrate", "check")

    models = tmp_path / package / "models.py"
    models.write_text(
        models.read_text().replace(
            'Column("note", String(200)),',
            'Column("note", String(200)),\n    Column("status", String(20)),',
        )
    )
    drift = qxdb("migrate", "check", code=1)
    assert "- column orders.status is in the models but not in the database" in drift

    qxdb("migrate", "revision", "-m", "add status", "--autogenerate")
    qxdb("migrate", "up")
    clean = json.loads(qxdb("migrate", "check", "--json"))
    assert clean["ok"] is True, clean
    assert clean["differences"] == []
    if dialect == "sqlite":  # the script-only commands need no database: once is enough
        heads = json.loads(qxdb("migrate", "heads", "--json"))
        assert [h["message"] for h in heads] == ["add status"]
        history = json.loads(qxdb("migrate", "history", "--json"))
        assert [h["revision"] for h in history][1:] == [first_revision]

    undone = ok(run(tmp_path, "migrate", "down", "-1", "--yes", url=db_url))
    assert "will undo 1 revision:" in undone.stdout
    assert "add status" in undone.stdout
    assert f"the database is now at {first_revision}" in undone.stderr
    assert "upgrade" in qxdb("migrate", "up")

    if dialect == "postgresql":
        # Plain Alembic works on the generated folder too, with the URL from QX_DB__URL.
        config = str(tmp_path / "migrations" / "alembic.ini")
        down = ok(run(tmp_path, "-c", config, "downgrade", "-1", url=db_url, program=ALEMBIC))
        assert "Running downgrade" in down.stderr
        up = ok(run(tmp_path, "-c", config, "upgrade", "head", url=db_url, program=ALEMBIC))
        assert "Running upgrade" in up.stderr
