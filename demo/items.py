"""The demo's item catalog and the handler that checks clicks against it.

A click on an item the catalog does not list is refused with ``PoisonError``: a rule only the
handler can check (the event itself is valid), whose fix is operational, not a code change.
The catalog is synced before the run, so clicks on items launched during it are dead-lettered;
once the catalog learns them, ``oncepipe dlq replay`` applies those clicks.

Rows are keyed by consumer group: each demo run has a group of its own, so one run's fix never
leaks into the next run's catalog.

Owns the SQL of ``public.demo_catalog``. Public names: ``catalog_clicks``, ``create_catalog``,
``add_items``, ``HANDLER``, ``REFUSAL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from consumers import HandlerContext, InboundEvent
from consumers.handlers import handle_clicks
from oncepipe.errors import PoisonError
from schemas import ClickEvent

__all__ = ["HANDLER", "REFUSAL", "add_items", "catalog_clicks", "create_catalog"]

HANDLER = "demo.items:catalog_clicks"
"""The ``--handler`` spec of ``catalog_clicks`` for ``oncepipe consume``."""

REFUSAL = "not in the catalog"
"""The refusal's wording, which ``oncepipe dlq replay --error`` selects after the fix."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS public.demo_catalog (
    consumer_group text NOT NULL, item_id text NOT NULL,
    PRIMARY KEY (consumer_group, item_id)
)
"""


def create_catalog(conn: Any, group: str, items: Iterable[str]) -> None:
    """Create the catalog table (demo only, not a migration) and list ``items`` for ``group``."""
    conn.execute(_SCHEMA)
    add_items(conn, group, items)


def add_items(conn: Any, group: str, items: Iterable[str]) -> list[str]:
    """List ``items`` for ``group``; return the ones that were missing, sorted."""
    rows = conn.execute(
        "INSERT INTO public.demo_catalog SELECT %s, unnest(%s::text[])"
        " ON CONFLICT DO NOTHING RETURNING item_id",
        (group, sorted(set(items))),
    ).fetchall()
    return sorted(row[0] for row in rows)


def catalog_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The click handler, for clicks on items the catalog lists; the others are poison."""
    items = sorted({e.event.item_id for e in events if isinstance(e.event, ClickEvent)})
    tx.cursor.execute(
        "SELECT item_id FROM public.demo_catalog WHERE consumer_group = %s AND item_id = ANY(%s)",
        (tx.consumer_group, items),
    )
    known = {row[0] for row in tx.cursor.fetchall()}
    for inbound in events:
        item = inbound.event.item_id if isinstance(inbound.event, ClickEvent) else None
        if item is not None and item not in known:
            raise PoisonError(f"item {item} is {REFUSAL}; add it, then replay")
    handle_clicks(events, tx)
