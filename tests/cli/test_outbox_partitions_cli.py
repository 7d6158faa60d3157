"""``qxdb outbox partitions list | create-ahead | drop`` as a user (or cron) runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import MetaData, insert, text

from qxdb.engine import create_engine
from qxdb.ids import uuid7
from qxdb.outbox.partitions import OutboxPartitions
from qxdb.outbox.table import include_outbox_table
from qxdb.settings import DatabaseSettings
from qxdb.testing.plugin import run_coro
from tests.cli.conftest import run_qxdb
from tests.cli.test_outbox_cli import ok_json, one_error_line, qxdb

OLD = (datetime.now(UTC) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)


async def _seed(url: str) -> list[str]:
    table = include_outbox_table(MetaData(), partitioned=True)
    engine = create_engine(DatabaseSettings(), url=url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        parts = OutboxPartitions(engine)
        await parts.create_ahead(2, now=OLD)
        rows = [
            {
                "id": uuid7(),
                "event_name": "orders.placed",
                "payload": {},
                "occurred_at": OLD + timedelta(days=d, hours=1),
                "recorded_at": OLD + timedelta(days=d, hours=1),
                "published_at": OLD if d == 0 else None,
            }
            for d in (0, 0, 1)
        ]
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows)
        return [parts.partition_name(OLD + timedelta(days=d)) for d in (0, 1)]
    finally:
        await engine.dispose()


def test_partitions_commands(postgres_url: str) -> None:
    old, pending = run_coro(_seed(postgres_url))
    made = ok_json(postgres_url, "outbox", "partitions", "create-ahead", "--days", "2")
    assert len(made["created"]) == 2 and made["blocked"] == {}
    listed = ok_json(postgres_url, "outbox", "partitions", "list")["partitions"]
    assert [p["name"] for p in listed][:2] == [old, pending]
    assert listed[1]["pending"] == 1 and listed[-1]["is_default"]

    dry = qxdb(postgres_url, "outbox", "partitions", "drop", "--older-than", "7d", "--dry-run")
    assert dry.returncode == 1, dry.stderr  # a partition is kept: cron must notice
    assert f"would drop {old}" in dry.stdout and f"kept {pending}: 1 pending row" in dry.stdout
    refused = qxdb(postgres_url, "outbox", "partitions", "drop", "--older-than", "7d")
    one_error_line(refused, 2, "--yes")
    done = qxdb(postgres_url, "outbox", "partitions", "drop", "--older-than", "7d", "--yes")
    assert done.returncode == 1 and f"dropped {old}" in done.stdout, done.stderr
    names = [p["name"] for p in ok_json(postgres_url, "outbox", "partitions", "list")["partitions"]]
    assert old not in names and pending in names


def test_partitions_bad_input(sqlite_url: str, postgres_url: str) -> None:
    Path(sqlite_url.partition(":///")[2]).touch()  # an existing file: the refusal is ours
    one_error_line(run_qxdb("outbox", "partitions", "list", url=sqlite_url), 2, "needs PostgreSQL")
    one_error_line(
        run_qxdb("outbox", "partitions", "drop", "--older-than", "7x", url=postgres_url),
        2,
        "--older-than",
    )
    # An age that is no cutoff is refused as typed, before anything is read.
    one_error_line(
        run_qxdb("outbox", "partitions", "drop", "--older-than", "999999999d", url=postgres_url),
        2,
        "invalid --older-than '999999999d': that reaches before year 1",
    )
    one_error_line(
        run_qxdb("outbox", "partitions", "drop", "--older-than", "0d", url=sqlite_url),
        2,
        "invalid --older-than '0d': must be longer than zero",
    )
    one_error_line(
        run_qxdb("outbox", "partitions", "create-ahead", "--interval", "week", url=postgres_url),
        2,
        "unknown partition interval 'week'",
    )


async def _late(url: str) -> str:
    """Only an old partition and the default one; a row of today in the default."""
    table = include_outbox_table(MetaData(), partitioned=True)
    engine = create_engine(DatabaseSettings(), url=url)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        parts = OutboxPartitions(engine)
        await parts.create_ahead(1, now=OLD)
        async with engine.begin() as conn:
            await conn.execute(
                insert(table),
                [{"id": uuid7(), "event_name": "e", "payload": {}, "occurred_at": now}],
            )
        return parts.partition_name(now)
    finally:
        await engine.dispose()


def test_create_ahead_after_a_missed_day_names_the_blocked_partition(postgres_url: str) -> None:
    today = run_coro(_late(postgres_url))
    done = qxdb(postgres_url, "outbox", "partitions", "create-ahead", "--days", "3")
    assert done.returncode == 1, done.stderr
    assert f"not created {today}: the default partition already holds 1 row" in done.stdout
    assert done.stdout.count("created ") - done.stdout.count("not created ") == 2
    assert "Traceback" not in done.stderr
    as_json = qxdb(postgres_url, "outbox", "partitions", "create-ahead", "--days", "3", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"created": [], "blocked": {today: 1}, "partial": []}


PARTITIONED_MODELS = """
from qxdb.mapping import make_metadata
from qxdb.outbox import include_outbox_table

metadata = make_metadata()
include_outbox_table(metadata, partitioned=True)
"""


def test_partitions_are_not_drift_nor_tables_of_their_own(
    tmp_path: Path, postgres_url: str
) -> None:
    """The partitioned outbox through the whole tool: autogenerated, migrated, given its
    partitions; then neither migrate check nor a second autogenerate sees the
    partitions (autogenerate would write op.drop_table for each, the default one and its
    rows included), and schema check judges the parent only, and finds it right."""
    from tests.cli.migrate_support import make_project, ok, run

    package = make_project(tmp_path, PARTITIONED_MODELS)
    models = f"{package}.models:metadata"
    ok(run(tmp_path, "migrate", "init", "--metadata", models, url=postgres_url))
    ok(run(tmp_path, "migrate", "revision", "--autogenerate", "-m", "outbox", url=postgres_url))
    ok(run(tmp_path, "migrate", "up", url=postgres_url))
    ok(run(tmp_path, "outbox", "partitions", "create-ahead", "--days", "3", url=postgres_url))

    ok(run(tmp_path, "migrate", "check", url=postgres_url))
    again = ok(
        run(tmp_path, "migrate", "revision", "--autogenerate", "-m", "nothing", url=postgres_url)
    )
    written = sorted((tmp_path / "migrations" / "versions").glob("*_nothing.py"))
    assert len(written) == 1, again.stdout
    body = written[0].read_text()
    assert "drop_table" not in body and "drop_index" not in body

    checked = run_qxdb("schema", "check", "--database", "--json", url=postgres_url)
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    report = json.loads(checked.stdout)
    assert (report["tables_checked"], report["findings"]) == (1, [])
    ok(run(tmp_path, "schema", "check", "--metadata", models, url=None))


def test_partitions_follow_the_search_path_like_the_store(postgres_url: str) -> None:
    """The table lives in schema app, found through the database's search_path (as the
    store and the relay find it): the partitions commands find it there too."""

    async def prepare() -> None:
        engine = create_engine(DatabaseSettings(), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE SCHEMA app"))
                name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
                await conn.execute(text(f'ALTER DATABASE "{name}" SET search_path = app'))
        finally:
            await engine.dispose()
        engine = create_engine(DatabaseSettings(), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(include_outbox_table(MetaData(), partitioned=True).create)
                assert (await conn.execute(text("SELECT current_schema()"))).scalar() == "app"
        finally:
            await engine.dispose()

    run_coro(prepare())
    made = ok_json(postgres_url, "outbox", "partitions", "create-ahead", "--days", "2")
    assert len(made["created"]) == 3  # the default one and two days
    listed = ok_json(postgres_url, "outbox", "partitions", "list")["partitions"]
    assert len(listed) == 3 and listed[-1]["is_default"]
    assert ok_json(postgres_url, "outbox", "stats")["pending"] == 0
    dry = qxdb(postgres_url, "outbox", "partitions", "drop", "--older-than", "1d", "--dry-run")
    assert dry.returncode == 0, dry.stderr


USER_PARTITIONED_MODELS = """
from sqlalchemy import Column, String, Table

from qxdb.mapping import make_metadata, standard_audit_columns, uuid_column

metadata = make_metadata()
for name, kw in (("orders", {"postgresql_partition_by": "LIST (region)"}), ("orders_eu", {})):
    Table(
        name,
        metadata,
        uuid_column("id", primary_key=True),
        Column("region", String(8), primary_key=True),
        *standard_audit_columns(),
        **kw,
    )
"""


def test_a_partition_the_models_declare_is_compared_like_any_table(
    tmp_path: Path, postgres_url: str
) -> None:
    """Only partitions the models do not know are left out of the comparison: one they
    declare is in the database, so it is no drift and autogenerate creates nothing."""
    from tests.cli.migrate_support import make_project, ok, run

    package = make_project(tmp_path, USER_PARTITIONED_MODELS)

    async def prepare() -> None:
        engine = create_engine(DatabaseSettings(), url=postgres_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "CREATE TABLE orders (id uuid NOT NULL, region varchar(8) NOT NULL, "
                        "created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz, "
                        "created_by uuid, updated_by uuid, version integer NOT NULL DEFAULT 1, "
                        "CONSTRAINT pk_orders PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
                    )
                )
                await conn.execute(
                    text("CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu')")
                )
        finally:
            await engine.dispose()

    run_coro(prepare())
    ok(run(tmp_path, "migrate", "init", "--metadata", f"{package}.models:metadata", url=None))
    ok(run(tmp_path, "migrate", "stamp", "base", url=postgres_url))
    written = ok(
        run(tmp_path, "migrate", "revision", "--autogenerate", "-m", "none", url=postgres_url)
    )
    body = next((tmp_path / "migrations" / "versions").glob("*_none.py")).read_text()
    assert "create_table" not in body and "drop_table" not in body, (written.stdout, body)


def test_a_sub_partitioned_table_may_hold_every_levels_key(postgres_url: str) -> None:
    """PostgreSQL makes a sub-partitioned table's key hold the keys of every level: QX001
    accepts id plus all of them, and still flags a key that holds anything else."""

    async def prepare() -> None:
        engine = create_engine(DatabaseSettings(), url=postgres_url)
        try:
            async with engine.begin() as conn:
                for sql in (
                    "CREATE TABLE events (id uuid, at timestamptz, kind text, "
                    "CONSTRAINT pk_events PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at)",
                    "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM "
                    "('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (kind)",
                    "CREATE TABLE events_2026_a PARTITION OF events_2026 FOR VALUES IN ('a')",
                    "CREATE TABLE other (id uuid, at timestamptz, x text, "
                    "CONSTRAINT pk_other PRIMARY KEY (id, at, x)) PARTITION BY RANGE (at)",
                ):
                    await conn.execute(text(sql))
        finally:
            await engine.dispose()

    run_coro(prepare())
    done = run_qxdb("schema", "check", "--database", "--rule", "QX001", "--json", url=postgres_url)
    flagged = {f["table"] for f in json.loads(done.stdout)["findings"]}
    assert flagged == {"other"}, done.stdout
