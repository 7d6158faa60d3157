"""Crash safety: a real `qxdb outbox relay` process killed with SIGKILL at random moments,
ten times, restarted each time: every event ends up in the stream, exactly once."""

from __future__ import annotations

import asyncio
import json
import random
import signal

import pytest
from sqlalchemy import func, select

from tests.integration.test_relay import (
    TABLE,
    StreamScope,
    assert_exactly_once,
    delivery_ids,
    keyed_events,
    make_outbox,
    scope,
    seed,
    status_counts,
    stream_messages,
)
from tests.integration.test_relay_ordered import clean_env, relay_command

__all__ = ["scope"]

EVENTS = 20_000


@pytest.mark.slow
@pytest.mark.postgres_only
async def test_sigkill_ten_times_loses_nothing_and_duplicates_nothing(
    postgres_url: str, scope: StreamScope
) -> None:
    engine = await make_outbox(postgres_url)
    rng = random.Random()
    try:
        await seed(engine, keyed_events(EVENTS, 1000))

        async def published() -> int:
            async with engine.connect() as conn:
                query = select(func.count()).where(TABLE.c.published_at.is_not(None))
                return int((await conn.execute(query)).scalar_one())

        # Short leases, so rows held by a killed relay come back within a second.
        args = relay_command(
            postgres_url,
            scope,
            "--lease-seconds",
            "1",
            "--batch-size",
            "25",
            "--poll-interval",
            "0.05",
        )
        kills = 0
        for _ in range(10):
            before = await published()
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=clean_env(),
            )
            # Wait until it is really relaying, then kill it at a random moment.
            for _ in range(400):
                if await published() > before or proc.returncode is not None:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            kills += proc.returncode == -signal.SIGKILL
        assert kills == 10
        assert await published() < EVENTS, "the relay finished before the last kill"

        final = await asyncio.create_subprocess_exec(
            *relay_command(postgres_url, scope, "--once", "--json", "--poll-interval", "0.05"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(),
        )
        out, err = await asyncio.wait_for(final.communicate(), 120)
        assert final.returncode == 0, err.decode()
        assert json.loads(out)["published"] > 0
        assert await status_counts(engine) == {"published": EVENTS, "dead": 0, "pending": 0}
        messages = await stream_messages(scope, EVENTS)
        assert_exactly_once(messages, await delivery_ids(engine))
    finally:
        await engine.dispose()
