from __future__ import annotations

import asyncio
import itertools
import time
from uuid import UUID

from qxdb import (
    current_context,
    request_scope,
    reset_context,
    set_context,
    system_scope,
    utcnow,
    uuid7,
)
from qxdb.context import RequestContext


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    values = [uuid7() for _ in range(100_000)]
    assert all(v.version == 7 for v in values)
    assert all(v.variant == "specified in RFC 4122" for v in values[:100])
    ints = [v.int for v in values]
    assert all(a < b for a, b in itertools.pairwise(ints))
    # The embedded timestamp is the current time in milliseconds.
    assert abs((values[-1].int >> 80) - time.time_ns() // 1_000_000) < 5_000


def test_uuid7_is_a_stdlib_uuid() -> None:
    assert isinstance(uuid7(), UUID)


def test_utcnow_is_aware() -> None:
    assert utcnow().utcoffset() is not None


async def test_request_context_is_isolated_between_concurrent_tasks() -> None:
    tenants = [uuid7() for _ in range(50)]
    seen: dict[UUID, list[UUID | None]] = {}

    async def worker(tenant: UUID) -> None:
        with request_scope(tenant_id=tenant):
            for _ in range(5):
                await asyncio.sleep(0)
                seen.setdefault(tenant, []).append(current_context().tenant_id)

    await asyncio.gather(*(worker(t) for t in tenants))
    assert all(values == [t] * 5 for t, values in seen.items())
    assert current_context().tenant_id is None


def test_set_reset_and_system_scope() -> None:
    tenant = uuid7()
    token = set_context(RequestContext(tenant_id=tenant))
    try:
        assert current_context().tenant_id == tenant
        with system_scope() as ctx:
            assert ctx.system
            assert current_context().tenant_id is None
        assert current_context().tenant_id == tenant
        assert not current_context().system
    finally:
        reset_context(token)
    assert current_context().tenant_id is None
