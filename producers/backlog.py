"""The outbox's backlog: rows waiting for the relay, the oldest one, and held partitions.

Read by ``oncepipe status`` and by the relay's metrics endpoint, never by the relay's loop.

Public names: ``Backlog``, ``read_backlog``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["Backlog", "read_backlog"]


@dataclass(frozen=True)
class Backlog:
    """What the relay still has to publish."""

    pending: int
    oldest_created_at: datetime | None
    oldest_age_s: float
    """Seconds since the oldest pending row was written; 0 without one."""
    held: tuple[tuple[str, int, datetime], ...]
    """(topic, partition, retry time) of partitions the relay holds after a failure."""


_PENDING = """
SELECT count(*), min(created_at), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM oncepipe.outbox WHERE published_at IS NULL AND failed_at IS NULL
"""

_HELD = """
SELECT topic, kafka_partition, max(not_before) FROM oncepipe.outbox
WHERE published_at IS NULL AND failed_at IS NULL AND not_before IS NOT NULL
  AND not_before > now()
GROUP BY topic, kafka_partition ORDER BY topic, kafka_partition
"""


def read_backlog(conn: psycopg.Connection[Any]) -> Backlog:
    """The outbox's pending rows, their oldest, and the partitions held for a retry."""
    row = conn.execute(_PENDING).fetchone()
    pending, oldest, age = row if row is not None else (0, None, 0)
    held = tuple(
        (str(topic), int(partition if partition is not None else -1), until)
        for topic, partition, until in conn.execute(_HELD).fetchall()
    )
    return Backlog(int(pending), oldest, float(age), held)
