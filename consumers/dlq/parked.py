"""Parked keys as the dead-letter tool sees them: counts per blocker, and discarding blockers.

The parking itself is the consumer's (``consumers.parking``); this module reads its tables and
marks a blocker ``discarded`` (the worker owning its partition then releases the parked events
in order), recording the decision in the replay ledger (outcome ``discarded``).

Public names: ``Discard``, ``discard_blockers``, ``parked_counts``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from consumers.dlq.ledger import replayed_by

__all__ = ["Discard", "discard_blockers", "parked_counts"]

Discard = tuple[str, str, int, int, str, int, int, str | None]
"""(group, source topic, partition, offset, dlq topic, dlq partition, dlq offset, event id)."""

_COUNTS = """
SELECT b.consumer_group, b.topic, b.partition, b."offset", count(p.key)
FROM oncepipe.parked_blockers AS b
LEFT JOIN oncepipe.parked_events AS p
  ON (p.consumer_group, p.topic, p.key) = (b.consumer_group, b.topic, b.key)
WHERE %(group)s::text IS NULL OR b.consumer_group = %(group)s::text
GROUP BY b.consumer_group, b.topic, b.partition, b."offset"
"""

_LEDGER = """
INSERT INTO oncepipe.dlq_replays AS r (dlq_topic, dlq_partition, dlq_offset, source_topic,
    source_partition, source_offset, event_id, destination_topic, outcome, claim_id,
    replayed_by, replayed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'discarded', %s, %s, now())
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET
    outcome = 'discarded', claim_id = excluded.claim_id, replayed_by = excluded.replayed_by,
    replayed_at = now(), error = NULL
"""

_DISCARD = """
UPDATE oncepipe.parked_blockers SET state = 'discarded'
WHERE consumer_group = %s AND topic = %s AND partition = %s AND "offset" = %s
"""


def parked_counts(conn: Any, group: str | None = None) -> dict[tuple[str, str, int, int], int]:
    """Parked events per blocker (group, source topic, partition, offset), of one group or all."""
    rows = conn.execute(_COUNTS, {"group": group}).fetchall()
    return {(g, t, int(p), int(o)): int(n) for g, t, p, o, n in rows}


def discard_blockers(conn: Any, letters: Sequence[Discard], *, by: str | None = None) -> int:
    """Record each dead letter as discarded and release the keys it blocks; commits.

    Returns how many blockers were marked (a dead letter that blocks nothing is only recorded).
    ``by``: who discards, for the ledger (default ``user@host``).
    """
    claim_id = uuid.uuid4()
    by = by or replayed_by()
    marked = 0
    with conn.transaction():
        for (
            group,
            topic,
            partition,
            offset,
            dlq_topic,
            dlq_partition,
            dlq_offset,
            event_id,
        ) in letters:
            conn.execute(
                _LEDGER,
                (dlq_topic, dlq_partition, dlq_offset, topic, partition, offset, event_id,
                 topic, claim_id, by),
            )  # fmt: skip
            marked += conn.execute(_DISCARD, (group, topic, partition, offset)).rowcount
    return marked
