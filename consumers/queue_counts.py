"""What a queue-mode worker saw of its share group: acquired, in flight, acknowledged...

The client has no share-group admin API, so these counts are the workers' own view. They feed
the Prometheus registry when the worker serves metrics, and ``oncepipe.queue_members`` (one row
per worker, for ``oncepipe status``).

Public names: ``QueueCounts``, ``QueueMember``, ``read_members``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import Counter, Gauge

__all__ = ["QueueCounts", "QueueMember", "read_members"]

_PUBLISH = """
INSERT INTO oncepipe.queue_members AS m (consumer_group, member, acquired, in_flight,
    acknowledged, released, redelivered, refused, left_at)
VALUES (%(group)s, %(member)s, %(acquired)s, %(in_flight)s, %(acknowledged)s, %(released)s,
    %(redelivered)s, %(refused)s, CASE WHEN %(left)s THEN now() END)
ON CONFLICT (consumer_group, member) DO UPDATE SET
    acquired = excluded.acquired, in_flight = excluded.in_flight,
    acknowledged = excluded.acknowledged, released = excluded.released,
    redelivered = excluded.redelivered, refused = excluded.refused,
    left_at = excluded.left_at, updated_at = now()
"""

_READ = """
SELECT consumer_group, member, acquired, in_flight, acknowledged, released, redelivered,
       refused, updated_at, left_at
FROM oncepipe.queue_members
WHERE %(group)s::text IS NULL OR consumer_group = %(group)s::text
ORDER BY consumer_group, started_at, member
"""


@dataclass(frozen=True)
class QueueMember:
    """One worker's row of ``oncepipe.queue_members``."""

    group: str
    member: str
    acquired: int
    in_flight: int
    acknowledged: int
    released: int
    redelivered: int
    refused: int
    updated_at: datetime
    left_at: datetime | None


def read_members(conn: psycopg.Connection[Any], group: str | None) -> list[QueueMember]:
    """The members' rows (of ``group``, or of every group); none before migration 0020."""
    try:
        with conn.transaction():
            rows = conn.execute(_READ, {"group": group}).fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    return [QueueMember(*row) for row in rows]


_HELP = {
    "acquired": "Records the share group handed this worker (each under a lock)",
    "acknowledged": "Records accepted after their batch committed (or dead-lettered)",
    "released": "Records given back for redelivery (a failed batch, the batch deadline)",
    "redelivered": "Records acquired with a delivery count above 1",
    "refused": "Acknowledgements the broker refused (the lock had expired)",
}


@dataclass
class QueueCounts:
    """Counters of one worker, mirrored into Prometheus when a registry is given."""

    group: str
    registry: Any = None
    acquired: int = 0
    in_flight: int = 0
    acknowledged: int = 0
    released: int = 0
    redelivered: int = 0
    refused: int = 0
    _metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.registry is None:
            return
        for name, text in _HELP.items():
            self._metrics[name] = Counter(
                f"oncepipe_queue_{name}_records", text, ["group"], registry=self.registry
            )
        self._metrics["in_flight"] = Gauge(
            "oncepipe_queue_in_flight_records",
            "Records acquired and not acknowledged yet",
            ["group"],
            registry=self.registry,
        )

    def add(self, name: str, count: int) -> None:
        """Add ``count`` to counter ``name`` (one of acquired, acknowledged, released...)."""
        if not count:
            return
        setattr(self, name, getattr(self, name) + count)
        if name in ("acquired", "acknowledged", "released"):
            delta = count if name == "acquired" else -count
            self.in_flight += delta
            if "in_flight" in self._metrics:
                self._metrics["in_flight"].labels(self.group).set(self.in_flight)
        if name in self._metrics:
            self._metrics[name].labels(self.group).inc(count)

    def publish(self, conn: psycopg.Connection[Any], member: str, *, left: bool = False) -> None:
        """Upsert this worker's row and commit (``left``: it stops now)."""
        conn.execute(
            _PUBLISH, {"group": self.group, "member": member, "left": left, **self.snapshot()}
        )
        conn.commit()

    def snapshot(self) -> dict[str, int]:
        """The counts as they are now."""
        return {
            "acquired": self.acquired,
            "in_flight": self.in_flight,
            "acknowledged": self.acknowledged,
            "released": self.released,
            "redelivered": self.redelivered,
            "refused": self.refused,
        }
