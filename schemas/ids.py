"""Event ids that carry their creation time: UUIDv7 (RFC 9562).

The inbox look-up of a UUIDv7 id probes only the daily partitions from an hour before its time
on (migration 0022), so its cost does not grow with the inbox's retention; any other version
is still deduplicated, by a look-up in every partition.

Public names: ``uuid7``, ``uuid7_time``.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

__all__ = ["uuid7", "uuid7_time"]

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7: 48 bits of unix milliseconds (now unless given), then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"a UUIDv7 holds 48-bit unix milliseconds, not {ms}")
    rand = int.from_bytes(os.urandom(10))
    rand_a = (rand >> 62) & _RAND_A
    return uuid.UUID(int=(ms << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT_RFC | (rand & _RAND_B))


def uuid7_time(event_id: uuid.UUID) -> datetime | None:
    """The creation time a UUIDv7 carries; None for any other version."""
    if event_id.version != 7 or event_id.variant != uuid.RFC_4122:
        return None
    return datetime.fromtimestamp((event_id.int >> 80) / 1000, tz=UTC)
