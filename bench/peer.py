"""The peer comparison's write: raw click rows, no counters (``bench.peer:raw_rows``).

Both sides of ``python -m bench --only peer`` write the same rows into the same table,
``public.bench_peer_rows`` (the columns of ``public.click_events``, primary key
``(consumer_group, event_id)``): oncepipe through this handler (one statement per batch,
inside the runtime's inbox + offsets transaction), Quix Streams through its PostgreSQL sink
(``bench/peer_quix_app.py``).

Its parameters go in binary format (``%(name)b``), as in oncepipe's own handlers: psycopg's
text format escapes every element of a text array one by one, which for a 2 KB ``context``
costs far more than the write itself (see README.md, the profile).

Public names: ``TABLE``, ``CREATE_TABLE``, ``raw_rows``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from consumers.context import HandlerContext
from consumers.events import InboundEvent
from oncepipe.errors import PoisonError
from schemas import ClickEvent

__all__ = ["CREATE_TABLE", "TABLE", "raw_rows"]

TABLE = "public.bench_peer_rows"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    user_id        text        NOT NULL,
    item_id        text        NOT NULL,
    action         text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    session_id     text        NOT NULL,
    surface        text        NOT NULL,
    context        jsonb,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
)
"""

_INSERT = f"""
INSERT INTO {TABLE} (consumer_group, event_id, user_id, item_id, action, occurred_at,
    session_id, surface, context, topic, partition, "offset")
SELECT %(group)s, * FROM unnest(
    %(event_ids)b::uuid[], %(user_ids)b::text[], %(item_ids)b::text[], %(actions)b::text[],
    %(occurred)b::timestamptz[], %(sessions)b::text[], %(surfaces)b::text[],
    %(contexts)b::jsonb[], %(topics)b::text[], %(partitions)b::int[], %(offsets)b::bigint[]
)
"""


def raw_rows(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """Insert one raw row per new click event, in one statement."""
    clicks = []
    for inbound in events:
        if not isinstance(inbound.event, ClickEvent):
            raise PoisonError(
                f"raw_rows got a {type(inbound.event).__name__} at {inbound.topic}"
                f"[{inbound.partition}]@{inbound.offset}"
            )
        clicks.append(inbound.event)
    if not clicks:
        return
    tx.cursor.execute(
        _INSERT,
        {
            "group": tx.consumer_group,
            "event_ids": [c.event_id for c in clicks],
            "user_ids": [c.user_id for c in clicks],
            "item_ids": [c.item_id for c in clicks],
            "actions": [c.action.value for c in clicks],
            "occurred": [c.occurred_at for c in clicks],
            "sessions": [c.session_id for c in clicks],
            "surfaces": [c.surface for c in clicks],
            "contexts": [None if c.context is None else json.dumps(c.context) for c in clicks],
            "topics": [i.topic for i in events],
            "partitions": [i.partition for i in events],
            "offsets": [i.offset for i in events],
        },
    )
