"""Outbox row ids minted from the database clock (PostgreSQL): ordered by instant, then
by place in the commit, and valid UUID v7s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qxdb.outbox.recorder import uuid7_series


def test_ids_follow_the_instant_to_the_microsecond_then_the_place_in_the_commit() -> None:
    at = datetime(2026, 12, 2, 1, 2, 3, 999_998, tzinfo=UTC)
    series = [uuid7_series(at + timedelta(microseconds=n), 50) for n in range(4)]
    flat = [u for ids in series for u in ids]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in flat)
    # The first 48 bits are the Unix time in milliseconds.
    assert flat[0].int >> 80 == int(at.timestamp() * 1000)
    assert uuid7_series(at, 0) == []
