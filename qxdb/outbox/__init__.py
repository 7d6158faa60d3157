"""Transactional outbox: the table, the recorder, and (in submodules) operations and relay."""

from __future__ import annotations

from qxdb.outbox.recorder import DefaultOutboxRecorder, OutboxRecorder, outbox_row
from qxdb.outbox.table import OUTBOX_TABLE_NAME, include_outbox_table, outbox_table

__all__ = [
    "OUTBOX_TABLE_NAME",
    "DefaultOutboxRecorder",
    "OutboxRecorder",
    "include_outbox_table",
    "outbox_row",
    "outbox_table",
]
