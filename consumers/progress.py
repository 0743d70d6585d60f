"""How far each consumer group is: its offsets stored in PostgreSQL against the log's end.

The offsets that count live in ``oncepipe.consumer_offsets`` (Kafka's committed offsets are a
best-effort copy), so lag is the partition's high watermark minus the STORED next offset.
Read by ``oncepipe status`` and by a worker's metrics endpoint, never by the consume loop.

Public names: ``PartitionProgress``, ``read_progress``, ``stored_positions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["PartitionProgress", "read_progress", "stored_positions"]

Watermark = Callable[[str, int], int]
"""The high watermark of (topic, partition), from the broker."""


@dataclass(frozen=True)
class PartitionProgress:
    """One partition of one group: the stored offset, the log end and who owns it."""

    group: str
    topic: str
    partition: int
    stored_offset: int
    committed_at: datetime
    high_watermark: int | None
    """None when the broker did not answer for this partition."""
    owner: str | None
    owner_since: datetime | None

    @property
    def lag(self) -> int | None:
        """Records in the log not yet applied; None without a high watermark."""
        if self.high_watermark is None:
            return None
        return max(self.high_watermark - self.stored_offset, 0)


_STORED = """
SELECT o.consumer_group, o.topic, o.partition, o.next_offset, o.updated_at, w.owner::text, w.since
FROM oncepipe.consumer_offsets o
LEFT JOIN oncepipe.consumer_owners w USING (consumer_group, topic, partition)
WHERE %(group)s::text IS NULL OR o.consumer_group = %(group)s::text
ORDER BY o.consumer_group, o.topic, o.partition
"""


def stored_positions(
    conn: psycopg.Connection[Any], group: str | None = None
) -> list[tuple[Any, ...]]:
    """Rows (group, topic, partition, next_offset, updated_at, owner, owner_since)."""
    return list(conn.execute(_STORED, {"group": group}).fetchall())


def read_progress(
    conn: psycopg.Connection[Any], high_watermark: Watermark, group: str | None = None
) -> list[PartitionProgress]:
    """Every stored partition of ``group`` (or of every group) with its lag.

    ``high_watermark`` is asked once per (topic, partition); a failure leaves that
    partition's watermark None rather than failing the whole read.
    """
    marks: dict[tuple[str, int], int | None] = {}
    out = []
    for group_, topic, partition, stored, updated_at, owner, since in stored_positions(conn, group):
        where = (topic, partition)
        if where not in marks:
            try:
                marks[where] = high_watermark(topic, partition)
            except Exception:  # noqa: BLE001 - an unreachable broker shows as an unknown lag
                marks[where] = None
        out.append(
            PartitionProgress(
                group_, topic, partition, stored, updated_at, marks[where], owner, since
            )
        )
    return out
