"""RelayConfig owns the relay's ranges (the command passes its options straight to it)."""

from __future__ import annotations

from typing import Any

import pytest

from qxdb.errors import ConfigurationError
from qxdb.outbox.relay import RelayConfig


def test_defaults_are_valid() -> None:
    config = RelayConfig()
    assert config.batch_size >= 1
    assert config.lease_seconds > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"batch_size": 10**9},
        {"batch_size": "5"},
        {"batch_size": True},
        {"batch_size": 5.0},
        {"max_attempts": 0},
        {"pipeline_depth": 0},
        {"lease_seconds": float("nan")},
        {"lease_seconds": float("inf")},
        {"lease_seconds": -1.0},
        {"lease_seconds": 0.0},
        {"lease_seconds": "30"},
        {"poll_interval_seconds": float("nan")},
        {"poll_interval_seconds": -0.5},
        {"poll_interval_seconds": 1e300},
        {"backoff_base_seconds": float("inf")},
        {"backoff_base_seconds": -1.0},
        {"backoff_max_seconds": float("nan")},
        {"backoff_base_seconds": 10.0, "backoff_max_seconds": 5.0},
        {"broker_probe_seconds": 0.0},
        {"outage_reminder_seconds": float("inf")},
        {"log_interval_seconds": -1.0},
        {"worker_id": ""},
    ],
)
def test_out_of_range_is_a_configuration_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="relay "):
        RelayConfig(**kwargs)


def test_edges_are_accepted() -> None:
    config = RelayConfig(
        batch_size=10_000, lease_seconds=0.1, poll_interval_seconds=0.01, backoff_base_seconds=0
    )
    assert config.batch_size == 10_000
    assert RelayConfig(lease_seconds=30).lease_seconds == 30  # an int of seconds is fine
