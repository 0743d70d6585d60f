"""The inbox table (``oncepipe.inbox``): one row per event a consumer group applied.

The only module with the inbox's SQL, so changing its layout (time partitions) is one change.

Public names: ``claim_new``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from consumers.events import InboundEvent

__all__ = ["claim_new"]

# Array order is the insert order (WITH ORDINALITY), so of two records of one event in the
# same batch the earlier one is the one inserted, and the one the handler gets.
_CLAIM = """
INSERT INTO oncepipe.inbox AS i (consumer_group, event_id, topic, partition, "offset")
SELECT %(group)s, e.event_id, e.topic, e.partition, e.offset
FROM unnest(%(event_ids)s::uuid[], %(topics)s::text[], %(partitions)s::int[],
            %(offsets)s::bigint[]) WITH ORDINALITY AS e(event_id, topic, partition, "offset", n)
ORDER BY e.n
ON CONFLICT (consumer_group, event_id) DO NOTHING
RETURNING i.topic, i.partition, i."offset"
"""


def claim_new(
    cursor: psycopg.Cursor[Any], group: str, events: Sequence[InboundEvent]
) -> list[InboundEvent]:
    """Insert inbox rows for ``events``; return those not applied before, in input order."""
    if not events:
        return []
    cursor.execute(
        _CLAIM,
        {
            "group": group,
            "event_ids": [e.event_id for e in events],
            "topics": [e.topic for e in events],
            "partitions": [e.partition for e in events],
            "offsets": [e.offset for e in events],
        },
    )
    inserted = {(row[0], row[1], row[2]) for row in cursor.fetchall()}
    return [e for e in events if (e.topic, e.partition, e.offset) in inserted]
