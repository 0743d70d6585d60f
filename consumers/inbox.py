"""The inbox table (``oncepipe.inbox``): one row per event a consumer group applied.

Partitioned by day on ``applied_at``; this module inserts, ``consumers.inbox_partitions``
creates and drops the partitions.

Public names: ``claim_new``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from consumers.events import InboundEvent
from oncepipe.db import wrap_as_unavailable

__all__ = ["claim_new"]

# The inbox is partitioned by day (oncepipe/sql/0007_inbox_partitioned.sql): the SQL
# function takes the locks that keep dedupe exact across a day boundary, then inserts the rows
# no partition has. Array order is the insert order (WITH ORDINALITY), so of two records of one
# event in the same batch the earlier one is the one inserted, and the one the handler gets.
# Arrays in binary format: the text format's per-element escaping is a client cost per event.
_CLAIM = (
    "SELECT * FROM oncepipe.inbox_claim(%(group)s, %(event_ids)b::uuid[], %(topics)b::text[],"
    " %(partitions)b::int[], %(offsets)b::bigint[])"
)
_NO_PARTITION = (
    "oncepipe.inbox has no partition for today; retrying (run oncepipe maintain, and schedule "
    "it daily)"
)


def claim_new(
    cursor: psycopg.Cursor[Any], group: str, events: Sequence[InboundEvent]
) -> list[InboundEvent]:
    """Insert inbox rows for ``events``; return those not applied before, in input order."""
    if not events:
        return []
    # The only check on the inbox is its partitioning: no partition covers today yet.
    with wrap_as_unavailable(_NO_PARTITION, catch=(psycopg.errors.CheckViolation,)):
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
