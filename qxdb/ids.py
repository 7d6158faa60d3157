"""Time-ordered identifiers: ``uuid7()`` and ``utcnow()``.

UUID v7 keys keep B-tree inserts at the right edge of the index. Within one process the
values are strictly increasing, even when many are made in the same millisecond, so
ids also order rows by creation.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from uuid import UUID

__all__ = ["utcnow", "uuid7"]

if sys.version_info >= (3, 14):  # pragma: no cover - exercised on 3.14 only
    from uuid import uuid7 as _raw_uuid7
else:
    from uuid_utils.compat import uuid7 as _raw_uuid7

_RAND_B_MASK = (1 << 62) - 1
_lock = threading.Lock()
_last = 0


def uuid7() -> UUID:
    """A version-7 UUID, strictly greater than every earlier one from this process."""
    global _last
    candidate = _raw_uuid7().int
    with _lock:
        if candidate <= _last:
            # Same millisecond (or a clock step back): continue from the last value. Only
            # the 62 random bits are bumped, so version and variant stay intact.
            if _last & _RAND_B_MASK == _RAND_B_MASK:
                candidate = (_last & ~_RAND_B_MASK) + (1 << 64)  # carry into rand_a
            else:
                candidate = _last + 1
        _last = candidate
    return UUID(int=candidate)


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)
