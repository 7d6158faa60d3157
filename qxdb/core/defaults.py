"""Defaults shared by the library and the command, so a command option never copies one.

Each value is the default of a library entry point; the command's options import it from
here (importing the entry point itself would pull SQLAlchemy into ``qxdb --help``).
"""

from __future__ import annotations

__all__ = [
    "BULK_BATCH_SIZE",
    "DEMO_ORDERS",
    "MAX_EVENT_ROUNDS",
    "MIGRATION_DDL_LOCK_TIMEOUT_SECONDS",
    "MIGRATION_LOCK_RETRIES",
    "MIGRATION_LOCK_TIMEOUT_SECONDS",
    "NATS_URL",
    "OUTBOX_LIST_LIMIT",
    "OUTBOX_LIST_LIMIT_MAX",
    "OUTBOX_TABLE_NAME",
    "POSTGRES_MAX_TIMEOUT_MS",
    "RELAY_BATCH_SIZE",
    "RELAY_DUPLICATE_WINDOW_SECONDS",
    "RELAY_LEASE_SECONDS",
    "RELAY_LOG_FORMAT",
    "RELAY_MAX_ATTEMPTS",
    "RELAY_METRICS_HOST",
    "RELAY_POLL_INTERVAL_SECONDS",
    "SUBJECT_PREFIX",
    "TOP_INTERVAL_MAX_SECONDS",
    "TOP_INTERVAL_MIN_SECONDS",
    "TOP_INTERVAL_SECONDS",
]

# The transactional outbox table (QX_DB__OUTBOX_TABLE overrides it).
OUTBOX_TABLE_NAME = "qx_outbox_events"
# Rows per page of `OutboxStore.list_rows` / `qxdb outbox inspect`, and its upper bound.
OUTBOX_LIST_LIMIT = 50
OUTBOX_LIST_LIMIT_MAX = 10_000
# Rows per short transaction of a bulk replay or purge.
BULK_BATCH_SIZE = 10_000
# Seconds `qxdb migrate upgrade|downgrade|stamp` waits for another migration's lock.
MIGRATION_LOCK_TIMEOUT_SECONDS = 300.0
# PostgreSQL lock_timeout of migration statements (QX_DB__LOCK_TIMEOUT_MS overrides it), and
# how often a revision that hit it is retried.
MIGRATION_DDL_LOCK_TIMEOUT_SECONDS = 5.0
MIGRATION_LOCK_RETRIES = 3
# Rounds of event handlers a unit of work drains before it calls it a loop.
MAX_EVENT_ROUNDS = 10
# The relay (RelayConfig and `qxdb outbox relay`).
NATS_URL = "nats://127.0.0.1:4222"
SUBJECT_PREFIX = "qxdb"
RELAY_BATCH_SIZE = 500
RELAY_MAX_ATTEMPTS = 10
RELAY_LEASE_SECONDS = 30.0
RELAY_POLL_INTERVAL_SECONDS = 2.0
RELAY_DUPLICATE_WINDOW_SECONDS = 120.0
# Where `--metrics-port` listens: every interface, since the scraper is another host.
RELAY_METRICS_HOST = "0.0.0.0"
# How the relay command writes its log lines ("text" or "json"; QX_DB__LOG_FORMAT).
RELAY_LOG_FORMAT = "text"
# Seconds between two refreshes of `qxdb outbox top`, and the range it takes (--once and
# --json wait one interval for their rate: an hour is the most a script should wait).
TOP_INTERVAL_SECONDS = 1.0
TOP_INTERVAL_MIN_SECONDS = 0.2
TOP_INTERVAL_MAX_SECONDS = 3600.0
# Orders `qxdb demo` places.
DEMO_ORDERS = 36
# PostgreSQL's largest statement_timeout / lock_timeout (an int4 of milliseconds): a larger
# value would be accepted by us and refused by the server.
POSTGRES_MAX_TIMEOUT_MS = 2_147_483_647
