"""The click handler: raw click events plus per-item and per-user-item counters.

Owns the SQL of ``public.click_events``, ``public.item_click_counts`` and
``public.user_item_click_counts``. Counters are incremented, not recomputed, so they are exact
only if each event is applied once: the runtime's inbox is what guarantees that.

Public names: ``handle_clicks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from consumers.context import HandlerContext
from consumers.events import InboundEvent
from oncepipe.errors import PoisonError
from schemas import ClickEvent

__all__ = ["handle_clicks"]

# One statement per batch: the raw rows, then both counters aggregated per batch (one upsert
# per distinct key, in key order so that concurrent workers lock counter rows in one order).
# The arrays go in binary format (%(name)b): psycopg's text format escapes every element of a
# text array with a regular expression, which cost more client time than the server's whole
# statement (bench/README.md, the profile).
_APPLY = """
WITH batch AS (
    SELECT * FROM unnest(
        %(event_ids)b::uuid[], %(user_ids)b::text[], %(item_ids)b::text[], %(actions)b::text[],
        %(occurred)b::timestamptz[], %(sessions)b::text[], %(surfaces)b::text[],
        %(contexts)b::jsonb[], %(topics)b::text[], %(partitions)b::int[], %(offsets)b::bigint[]
    ) AS b(event_id, user_id, item_id, action, occurred_at, session_id, surface, context,
           topic, partition, "offset")
), raw AS (
    INSERT INTO public.click_events (consumer_group, event_id, user_id, item_id, action,
        occurred_at, session_id, surface, context, topic, partition, "offset")
    SELECT %(group)s, event_id, user_id, item_id, action, occurred_at, session_id, surface,
           context, topic, partition, "offset"
    FROM batch
), items AS (
    INSERT INTO public.item_click_counts AS c (consumer_group, item_id, action, count)
    SELECT %(group)s, item_id, action, count(*) FROM batch
    GROUP BY item_id, action ORDER BY item_id, action
    ON CONFLICT (consumer_group, item_id, action) DO UPDATE SET count = c.count + excluded.count
)
INSERT INTO public.user_item_click_counts AS u (consumer_group, user_id, item_id, count)
SELECT %(group)s, user_id, item_id, count(*) FROM batch
GROUP BY user_id, item_id ORDER BY user_id, item_id
ON CONFLICT (consumer_group, user_id, item_id) DO UPDATE SET count = u.count + excluded.count
"""


def _clicks(events: Sequence[InboundEvent]) -> list[tuple[InboundEvent, ClickEvent]]:
    pairs = []
    for inbound in events:
        if not isinstance(inbound.event, ClickEvent):
            raise PoisonError(
                f"click handler got a {type(inbound.event).__name__} at {inbound.topic}"
                f"[{inbound.partition}]@{inbound.offset} (event_id {inbound.event_id})"
            )
        pairs.append((inbound, inbound.event))
    return pairs


def handle_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """Record each new click and add it to its item and user-item counters."""
    pairs = _clicks(events)
    if not pairs:
        return
    tx.cursor.execute(
        _APPLY,
        {
            "group": tx.consumer_group,
            "event_ids": [c.event_id for _, c in pairs],
            "user_ids": [c.user_id for _, c in pairs],
            "item_ids": [c.item_id for _, c in pairs],
            "actions": [c.action.value for _, c in pairs],
            "occurred": [c.occurred_at for _, c in pairs],
            "sessions": [c.session_id for _, c in pairs],
            "surfaces": [c.surface for _, c in pairs],
            "contexts": [None if c.context is None else json.dumps(c.context) for _, c in pairs],
            "topics": [i.topic for i, _ in pairs],
            "partitions": [i.partition for i, _ in pairs],
            "offsets": [i.offset for i, _ in pairs],
        },
    )
