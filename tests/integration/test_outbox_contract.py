"""Hostile input to the outbox's public entry points yields only qxdb errors, never a
driver error and never an aborted transaction, on both dialects."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from qxdb import (
    DefaultOutboxRecorder,
    Error,
    OutboxSelection,
    OutboxStore,
    include_outbox_table,
    uuid7,
)

HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.just("a\x00b"),
    st.just("\ud800"),
    st.binary(max_size=4),
    st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=2),
    st.datetimes(),
    st.timedeltas(),
    st.just(uuid7()),
    st.sampled_from([object(), MetaData(), "pending", "orders.*", "qx_outbox_events\n"]),
)
SELECTION_FIELDS = ("status", "event", "tenant_id", "since", "until", "ids")


class _Created:
    engines: set[int] = set()


async def _call(coro_or_call: Any) -> Error | None:
    try:
        result = coro_or_call()
        if hasattr(result, "__await__"):
            await result
    except Error as exc:
        return exc
    return None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=st.dictionaries(st.sampled_from(SELECTION_FIELDS), HOSTILE, max_size=3),
    name=HOSTILE,
    limit=HOSTILE,
    after=HOSTILE,
    age=HOSTILE,
)
async def test_hostile_outbox_input_raises_only_qxdb_errors(
    engine: AsyncEngine, fields: dict[str, Any], name: Any, limit: Any, after: Any, age: Any
) -> None:
    metadata = MetaData()
    table = include_outbox_table(metadata, "qx_outbox_events")
    if id(engine) not in _Created.engines:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        _Created.engines.add(id(engine))
    await _call(lambda: include_outbox_table(MetaData(), name))
    await _call(lambda: include_outbox_table(name))
    await _call(lambda: DefaultOutboxRecorder(name))
    await _call(lambda: OutboxStore(engine, name))
    await _call(lambda: OutboxStore(name))
    await _call(lambda: OutboxStore(engine, table, batch_size=limit))
    store = OutboxStore(engine, table)
    selection: OutboxSelection | None = None
    with contextlib.suppress(Error):
        selection = OutboxSelection(**fields)
    for sel in (selection, OutboxSelection()):
        if sel is None:
            continue
        await _call(lambda s=sel: store.count(s))
        await _call(lambda s=sel: store.list_rows(s, limit=limit, after=after))
        await _call(lambda s=sel: store.list_rows(s, after=after))
        await _call(lambda s=sel: store.plan_replay(s))
    await _call(lambda: store.get(after))
    await _call(lambda: store.plan_purge(age))
    await _call(lambda: store.plan_purge(timedelta(days=1), now=age))
    # The store still answers: no connection or transaction was left broken.
    assert await store.count(OutboxSelection()) == 0
