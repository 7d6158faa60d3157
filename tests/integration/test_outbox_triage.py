"""Dead-letter triage on SQLite and PostgreSQL: failure groups and replaying one group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, Integer, MetaData, Table, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb.errors import ConfigurationError, ValidationError
from qxdb.ids import uuid7
from qxdb.outbox.fingerprint import (
    describe_error,
    error_class,
    error_fingerprint,
    normalise_error,
)
from qxdb.outbox.recorder import DefaultOutboxRecorder
from qxdb.outbox.selection import OutboxSelection
from qxdb.outbox.store import OutboxStore
from qxdb.outbox.table import failure_marks, outbox_table
from qxdb.outbox.triage import error_group_column
from qxdb.types import UTCDateTime

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TENANTS = (
    UUID("00000000-0000-7000-8000-00000000000a"),
    UUID("00000000-0000-7000-8000-00000000000b"),
)

# Five failure classes; every message differs from the others of its class in its ids.
CLASSES = (
    lambda i: f"TimeoutError: no ack for {uuid7()} after {i % 7 + 1}.5 s",
    lambda i: f"RejectedError: subject 'orders.{i}' not bound to a stream (code {400 + i % 3})",
    lambda i: f'ValueError: payload of {1000 + i} bytes > max_payload "{i}k"',
    lambda i: f"KeyError: 'ord_{i:08x}'",
    lambda i: f"ConnectionRefusedError: [Errno 111] connect to 10.0.{i % 255}.7:4222 refused",
)

# Awkward texts: the SQL rules must give exactly what the Python rules give.
CORPUS = (
    "",
    "plain words only",
    "TimeoutError: waited 12 s for 0193A1B2-7C4D-7E5F-8A9B-0C1D2E3F4A5B",
    "x: abcdef01-2345-6789-abcd-ef0123456789abcdef and 7",
    "can't reach 'db-01' (it's down) \"quoted 2\" and 'unclosed 3",
    "tabs\tand\n\nnewlines   and  spaces 1.2.3.4",
    "int64 orders.v2 x86_64 utf8 HTTP/1.1 -42 +3e10 0x1F __9__",
    "multi: a1b2 c3 d e4 5f6 _7_ 8",
    "unicode: café 42 ünïcödé 'ß' naïve9",
    "percent % underscore _ backslash \\ 5 ampersand & 6",
    "ConnectionError: can't reach 'db-primary'",
    "users' data: 'x' and it's 'y' o'clock",
    "'leading' quote and trailing 'value'",
)


def _dead(i: int, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "event_name": f"orders.e{i % 2}",
        "payload": {"event_id": str(uuid7()), "i": i},
        "occurred_at": NOW - timedelta(hours=2),
        "delivery_id": uuid7(),
        "attempts": 10,
        "last_error": message,
        "dead_at": NOW - timedelta(minutes=60 - i % 50),
        "tenant_id": TENANTS[i % 2],
        "published_at": None,
        **extra,
    }


async def _seed(engine: AsyncEngine, rows: list[dict[str, Any]]) -> Table:
    table = outbox_table()
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(insert(table), rows)
    return table


def _fixture_rows() -> list[dict[str, Any]]:
    sizes = (40, 25, 15, 7, 3)
    rows = [_dead(i, CLASSES[k](i)) for k, n in enumerate(sizes) for i in range(n)]
    # Not dead: a failed row (still pending) and a published one with the same errors.
    rows.append(_dead(1, CLASSES[0](1), dead_at=None, attempts=2))
    rows.append(_dead(2, CLASSES[0](2), dead_at=None, published_at=NOW))
    return rows


async def test_five_classes_make_five_exact_groups(engine: AsyncEngine) -> None:
    await _seed(engine, _fixture_rows())
    store = OutboxStore(engine)
    report = await store.failure_groups()
    assert [g.count for g in report.groups] == [40, 25, 15, 7, 3]
    assert (report.rows, report.group_count, report.group_by) == (90, 5, "error")
    assert [g.error_class for g in report.groups] == [
        "TimeoutError",
        "RejectedError",
        "ValueError",
        "KeyError",
        "ConnectionRefusedError",
    ]
    top = report.groups[0]
    assert top.error == "TimeoutError: no ack for <uuid> after <n>.<n> s"
    assert top.fingerprint == error_fingerprint(CLASSES[0](99))
    assert top.first_failed_at == NOW - timedelta(minutes=60)
    assert top.last_failed_at == NOW - timedelta(minutes=60 - 39)
    assert top.sample is not None and top.sample.status == "dead"
    assert error_fingerprint(top.sample.last_error) == top.fingerprint
    assert report.to_dict()["groups"][0]["sample"]["id"] == top.sample.id

    cut = await store.failure_groups(limit=2)
    assert [g.count for g in cut.groups] == [40, 25]
    assert (cut.rows, cut.group_count) == (90, 5)

    by_event = await store.failure_groups(by="event")
    assert sorted((g.event_name, g.count) for g in by_event.groups) == [
        *(("orders.e0", n) for n in (2, 4, 8, 13, 20)),
        *(("orders.e1", n) for n in (1, 3, 7, 12, 20)),
    ]
    assert by_event.group_count == 10
    by_tenant = await store.failure_groups(by="tenant")
    assert {g.tenant_id for g in by_tenant.groups} == set(TENANTS)
    assert (
        sum(g.count for g in by_tenant.groups if g.tenant_id == TENANTS[0]) == 20 + 13 + 8 + 4 + 2
    )

    failed = await store.failure_groups(OutboxSelection(status="failed"))
    assert [(g.count, g.last_failed_at) for g in failed.groups] == [(1, None)]
    narrowed = await store.failure_groups(OutboxSelection(status="dead", event="orders.e1"))
    assert sum(g.count for g in narrowed.groups) == 20 + 12 + 7 + 3 + 1

    empty = await store.failure_groups(OutboxSelection(status="dead", event="nothing"))
    assert (empty.rows, empty.group_count, empty.groups) == (0, 0, [])


async def test_replaying_one_group_touches_only_its_rows(engine: AsyncEngine) -> None:
    table = await _seed(engine, _fixture_rows())
    store = OutboxStore(engine, batch_size=7)  # several batches
    before = await store.failure_groups()
    target = before.groups[1]  # RejectedError, 25 rows
    async with engine.connect() as conn:
        old = {r.id: r for r in (await conn.execute(select(table))).all()}

    group = OutboxSelection(status="dead", error_group=target.fingerprint)
    plan = await store.plan_replay(group)
    assert plan.count == 25
    assert plan.selection == {"status": "dead", "group": target.fingerprint}
    report = await store.replay(group, expected=plan.count)
    assert report.rows == 25 and report.batches == 4

    async with engine.connect() as conn:
        new = {r.id: r for r in (await conn.execute(select(table))).all()}
    changed = {i for i in old if old[i] != new[i]}
    assert len(changed) == 25
    for i in changed:
        assert error_fingerprint(old[i].last_error) == target.fingerprint
        assert old[i].dead_at is not None
        row = new[i]
        assert (row.dead_at, row.last_error, row.attempts, row.replay_count) == (None, None, 0, 1)
        assert row.first_failed_at == old[i].dead_at  # nothing else wrote it: the death
        assert row.delivery_id != old[i].delivery_id
    after = await store.failure_groups()
    assert [g.count for g in after.groups] == [40, 15, 7, 3]

    # Replayed and dead again: the row says so (a second replay keeps the first failure).
    again = next(iter(changed))
    async with engine.begin() as conn:
        await conn.execute(
            table.update()
            .where(table.c.id == again)
            .values(dead_at=NOW, last_error=CLASSES[1](7), attempts=10)
        )
    second = await store.replay(OutboxSelection(status="dead", error_group=target.fingerprint))
    assert second.rows == 1
    row = (await store.get(again)).value
    assert (row.replay_count, row.first_failed_at) == (2, old[again].dead_at)


async def test_split_group_replays_with_its_event(engine: AsyncEngine) -> None:
    await _seed(engine, _fixture_rows())
    store = OutboxStore(engine)
    by_event = await store.failure_groups(by="event")
    one = by_event.groups[0]
    assert one.event_name is not None
    chosen = OutboxSelection(status="dead", event=one.event_name, error_group=one.fingerprint)
    assert (await store.replay(chosen)).rows == one.count == 20


async def test_sql_rules_agree_with_python_rules(engine: AsyncEngine) -> None:
    await _seed(engine, [_dead(i, text, event_name=f"c.{i}") for i, text in enumerate(CORPUS)])
    groups = (await OutboxStore(engine).failure_groups(by="event")).groups
    got = {g.event_name: (g.error, g.fingerprint) for g in groups}
    want = {
        f"c.{i}": (normalise_error(text), error_fingerprint(text)) for i, text in enumerate(CORPUS)
    }
    assert got == want
    for i, text in enumerate(CORPUS):
        chosen = OutboxSelection(status="dead", error_group=error_fingerprint(text))
        plan = await OutboxStore(engine).plan_replay(chosen)
        assert f"c.{i}" in {r.event_name for r in plan.sample}


async def test_bad_triage_requests_are_refused(engine: AsyncEngine) -> None:
    await _seed(engine, _fixture_rows()[:3])
    store = OutboxStore(engine)
    with pytest.raises(ValidationError, match="dead or failed rows, not 'published'"):
        await store.failure_groups(OutboxSelection(status="published"))
    with pytest.raises(ValidationError, match="unknown grouping 'kind'"):
        await store.failure_groups(by="kind")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="limit must be between"):
        await store.failure_groups(limit=0)
    with pytest.raises(ValidationError, match="invalid failure group 'xyz'"):
        OutboxSelection(status="dead", error_group="xyz")
    upper = OutboxSelection(status="dead", error_group=" ABCDEF012345 ")
    assert upper.error_group == "abcdef012345"
    assert (await store.plan_replay(upper)).count == 0


async def test_a_table_without_the_triage_columns_is_reported_then_migrated(
    engine: AsyncEngine,
) -> None:
    """Recording keeps working on a table not migrated yet; the store says what is missing;
    the documented upgrade (three add_column calls) brings it up to date, rows included."""
    current = outbox_table()
    old = Table(
        current.name,
        MetaData(),
        *(
            c._copy()
            for c in current.columns
            if c.name not in ("replay_count", "first_failed_at", "error_group")
        ),
    )
    recorder = DefaultOutboxRecorder()
    async with engine.begin() as conn:
        await conn.run_sync(old.metadata.create_all)
        # What DefaultOutboxRecorder sends: the new columns are left to the server.
        await conn.execute(
            recorder._insert,
            [_dead(1, CLASSES[3](5)), _dead(2, CLASSES[3](6)), _dead(3, "x", dead_at=None)],
        )
    with pytest.raises(
        ConfigurationError, match="lacks columns error_group, first_failed_at, replay_count: bring"
    ):
        await OutboxStore(engine).failure_groups()

    def upgrade(sync_conn: Any) -> None:
        op = Operations(MigrationContext.configure(sync_conn))
        op.add_column(
            current.name, Column("replay_count", Integer(), server_default="0", nullable=False)
        )
        op.add_column(current.name, Column("first_failed_at", UTCDateTime(), nullable=True))
        op.add_column(current.name, error_group_column())

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
    groups = await OutboxStore(engine).failure_groups()
    assert [(g.fingerprint, g.count) for g in groups.groups] == [
        (error_fingerprint(CLASSES[3](1)), 2)
    ]
    replayed = await OutboxStore(engine).replay(
        OutboxSelection(status="dead", error_group=groups.groups[0].fingerprint)
    )
    assert replayed.rows == 2


def test_an_apostrophe_does_not_split_a_group() -> None:
    assert error_fingerprint("ConnectionError: can't reach 'db-primary'") == error_fingerprint(
        "ConnectionError: can't reach 'cache'"
    )
    assert normalise_error("can't reach 'db-primary'") == "can't reach '?'"


def test_error_class_reads_only_a_python_name() -> None:
    assert error_class("TimeoutError: x") == "TimeoutError"
    assert error_class("nats.errors.NoRespondersError: x") == "nats.errors.NoRespondersError"
    assert error_class("lease ran out before publishing") is None
    assert error_class("bad thing: happened") is None
    assert error_class(None) is None
    # An exception without a message: the relay writes its class name alone.
    assert error_class("TimeoutError") == "TimeoutError"
    assert error_class("asyncio.exceptions.CancelledError") == "asyncio.exceptions.CancelledError"
    assert error_class("timeout") is None  # a message, not a class
    # A digit in the class name is kept (normalising the whole text would not keep it).
    assert error_class("Http2Error: stream 7 reset") == "Http2Error"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Http2Error: stream 7 reset", "Http2Error: stream <n> reset"),
        ("S3UploadError: key 'a/b/9' refused", "S3UploadError: key '?' refused"),
        ("TimeoutError", "TimeoutError"),
        ("no class here 42", "no class here <n>"),
        (None, ""),
    ],
)
def test_a_group_shows_its_class_as_written_and_its_message_normalised(
    raw: str | None, shown: str
) -> None:
    assert describe_error(raw) == shown


async def test_groups_name_classes_with_digits_and_bare_classes(engine: AsyncEngine) -> None:
    await _seed(
        engine,
        [
            *(_dead(i, f"Http2Error: stream {i} reset") for i in range(3)),
            *(_dead(10 + i, "TimeoutError") for i in range(2)),
        ],
    )
    groups = (await OutboxStore(engine).failure_groups()).groups
    assert [(g.count, g.error_class, g.error) for g in groups] == [
        (3, "Http2Error", "Http2Error: stream <n> reset"),
        (2, "TimeoutError", "TimeoutError"),
    ]


async def test_failure_marks_keep_the_first_failure(engine: AsyncEngine) -> None:
    """failure_marks is what a relay's failure UPDATE adds: the first failure is written once."""
    table = await _seed(engine, [_dead(1, "x", dead_at=None)])
    first, second = NOW - timedelta(minutes=5), NOW
    for at in (first, second):
        async with engine.begin() as conn:
            await conn.execute(
                table.update().values(
                    last_error=f"TimeoutError: try at {at}",
                    **failure_marks(table, literal(at, UTCDateTime())),
                )
            )
    async with engine.connect() as conn:
        row = (await conn.execute(select(table))).one()
    assert row.first_failed_at == first
