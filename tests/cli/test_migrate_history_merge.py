"""A long history stays manageable: merge, history --verbose/--range, and migrate test as a
user runs them (issue 16, parts 3 and 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qxdb.urls import sqlite_file
from tests.cli.migrate_support import ok, one_error, run
from tests.integration.kit_histories import BROKEN, HEALTHY, lay_down


@pytest.mark.slow
def test_merge_joins_two_heads_into_one_that_upgrades(tmp_path: Path, sqlite_url: str) -> None:
    lay_down(tmp_path, BROKEN["two_heads"].history)
    database = sqlite_file(sqlite_url)
    assert database is not None
    database.touch()  # check only reads: it never creates the database file
    check = run(tmp_path, "migrate", "check", url=sqlite_url)
    assert "merge them (qxdb migrate merge)" in check.stdout

    proc = ok(run(tmp_path, "migrate", "merge", "-m", "join color and size", url=None))
    assert proc.stdout.startswith("wrote migrations/versions/")
    assert "merged r3a, r3b into" in proc.stderr
    heads = json.loads(ok(run(tmp_path, "migrate", "heads", "--json", url=None)).stdout)
    assert len(heads) == 1 and sorted(heads[0]["down_revisions"]) == ["r3a", "r3b"]
    assert heads[0]["is_merge"] is True and heads[0]["message"] == "join color and size"
    # The merge revision is written from the qxdb template: typed, and it runs.
    text = Path(tmp_path / heads[0]["path"]).read_text()
    assert "down_revision: str | Sequence[str] | None = ('r3a', 'r3b')" in text
    ok(run(tmp_path, "migrate", "up", url=sqlite_url))
    ok(run(tmp_path, "migrate", "check", url=sqlite_url))
    # With one head, the test kit passes this history, stairway included.
    report = json.loads(ok(run(tmp_path, "migrate", "test", "--json", url=sqlite_url)).stdout)
    assert report["ok"] is True and "stairway" in report["passed"]


def test_merge_with_one_head_is_bad_input(tmp_path: Path) -> None:
    lay_down(tmp_path, HEALTHY)
    line = one_error(run(tmp_path, "migrate", "merge", url=None), 2)
    assert "nothing to merge: 1 head(s) (r2)" in line
    assert not list((tmp_path / "migrations" / "versions").glob("*merge*"))


def test_history_verbose_marks_the_current_revision(tmp_path: Path, db_url: str) -> None:
    lay_down(tmp_path, HEALTHY)
    ok(run(tmp_path, "migrate", "up", "r1", url=db_url))
    proc = ok(run(tmp_path, "migrate", "history", "--verbose", url=db_url))
    lines = proc.stdout.splitlines()
    assert lines[0] == "  r2 (head)  items.qty and a seed row"
    assert "* r1 (current)  items" in lines
    assert "    parents: r1" in lines and "    file: migrations/versions/r1_items.py" in lines

    document = json.loads(
        ok(run(tmp_path, "migrate", "history", "-v", "--json", url=db_url)).stdout
    )
    assert [(r["revision"], r["current"]) for r in document] == [("r2", False), ("r1", True)]
    # Without --verbose, history needs no database and marks nothing.
    plain = ok(run(tmp_path, "migrate", "history", url="postgresql+asyncpg://x@127.0.0.1:9/x"))
    assert "(current)" not in plain.stdout and "*" not in plain.stdout


def test_history_range(tmp_path: Path) -> None:
    lay_down(tmp_path, BROKEN["two_heads"].history)
    only = json.loads(
        ok(run(tmp_path, "migrate", "history", "--range", "r2:r3a", "--json", url=None)).stdout
    )
    assert [r["revision"] for r in only] == ["r3a", "r2"]
    upper = json.loads(
        ok(run(tmp_path, "migrate", "history", "-r", "r2:", "--json", url=None)).stdout
    )
    assert sorted(r["revision"] for r in upper) == ["r2", "r3a", "r3b"]
    assert "must look like A:B" in one_error(
        run(tmp_path, "migrate", "history", "--range", "r2", url=None), 2
    )
    assert "'nope'" in one_error(
        run(tmp_path, "migrate", "history", "--range", "nope:", url=None), 2
    )


def test_migrate_test_reports_problems_with_exit_1(tmp_path: Path, sqlite_url: str) -> None:
    lay_down(tmp_path, BROKEN["non_idempotent_data_step"].history)
    proc = run(tmp_path, "migrate", "test", url=sqlite_url)
    ok(proc, 1)
    assert (
        "problem  no_trace [r2]: the downgrade left a trace: table items has 1 row(s), not 0"
        in proc.stdout
    )
    assert "ok       models_match" in proc.stdout
    assert "scratch database: sqlite+aiosqlite:///" in proc.stderr
    assert "qxdb: migrate test: 2 problem(s) in 2 revision(s)" in proc.stderr
    # The configured database was never touched: the kit ran on a scratch one.
    assert not Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).exists()

    document = json.loads(ok(run(tmp_path, "migrate", "test", "--json", url=sqlite_url), 1).stdout)
    assert document["ok"] is False
    assert {p["check"] for p in document["problems"]} == {"no_trace", "stairway"}


def test_migrate_test_in_place_refuses_a_used_database(tmp_path: Path, db_url: str) -> None:
    lay_down(tmp_path, HEALTHY)
    ok(run(tmp_path, "migrate", "up", "r1", url=db_url))
    line = one_error(run(tmp_path, "migrate", "test", "--in-place", url=db_url), 2)
    assert "needs an empty database" in line and "has tables (alembic_version, items)" in line


def test_migrate_test_on_postgresql_uses_and_drops_a_scratch_database(
    tmp_path: Path, postgres_url: str
) -> None:
    lay_down(tmp_path, HEALTHY)
    proc = ok(run(tmp_path, "migrate", "test", url=postgres_url))
    assert "ok       stairway" in proc.stdout
    scratch = next(
        line for line in proc.stderr.splitlines() if line.startswith("scratch database:")
    )
    name = scratch.split("/")[-1].split()[0]
    assert name.startswith("qxdb_kit_")
    # Gone afterwards: the scratch database cannot be connected to.
    gone = run(tmp_path, "migrate", "current", url=postgres_url.rsplit("/", 1)[0] + "/" + name)
    assert "does not exist" in one_error(gone, 3)


@pytest.mark.slow
def test_the_demo_history_passes_the_kit_on_both_dialects(
    tmp_path: Path, postgres_url: str
) -> None:
    workspace = tmp_path / "shop"
    ok(run(tmp_path, "demo", "--dir", str(workspace), url=None))
    for url in (None, postgres_url):  # the demo's own SQLite file (untouched), PostgreSQL
        report = json.loads(ok(run(workspace, "migrate", "test", "--json", url=url)).stdout)
        assert report["ok"] is True, report["problems"]
        assert report["revisions"] >= 1 and "stairway" in report["passed"]


def test_migrate_test_against_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    lay_down(tmp_path, HEALTHY)
    url = "postgresql+asyncpg://deploy:s3cret-pw@127.0.0.1:9/app"
    proc = run(tmp_path, "migrate", "test", url=url)
    assert "cannot connect to postgresql+asyncpg://deploy:***@127.0.0.1:9/app" in one_error(proc, 3)
    assert "s3cret-pw" not in proc.stdout + proc.stderr
