"""The example's two consumer groups, each an ``EventHandlers`` registry.

``totals`` (``--handler orders.handlers:totals`` on ``events.OrderPlaced``) keeps one row of
totals per customer and emits a ``CustomerMilestone`` for each milestone an order reaches;
``milestone_log`` (``--handler orders.handlers:milestone_log`` on ``events.CustomerMilestone``)
records each milestone once. Both write in the batch's transaction, which oncepipe commits with
the inbox rows and the offsets: each event reaches a handler once per group, so the totals are
plain sums and the milestones are reached once, whatever the redeliveries and retries.

The handlers read only fields of ``OrderPlaced`` v1, so they run unchanged on either contract
release (``orders_contract``).
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers import EventHandlers, HandlerContext, InboundEvent
from orders.milestones import Totals, milestone_event_id, reached
from orders_contract import CustomerMilestone, OrderPlaced

__all__ = ["milestone_log", "totals"]

totals = EventHandlers()
milestone_log = EventHandlers()

_LOCK_TOTALS = """
SELECT customer_id, orders, amount_cents FROM public.customer_totals
WHERE consumer_group = %s AND customer_id = ANY(%s)
FOR UPDATE
"""
_SAVE_TOTALS = """
INSERT INTO public.customer_totals (consumer_group, customer_id, orders, amount_cents, updated_at)
SELECT %s, c, o, a, now() FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS t(c, o, a)
ON CONFLICT (consumer_group, customer_id) DO UPDATE
SET orders = excluded.orders, amount_cents = excluded.amount_cents, updated_at = now()
"""
_RECORD_MILESTONES = """
INSERT INTO public.customer_milestones
    (consumer_group, customer_id, milestone, threshold, order_id, reached_at, event_id)
SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::uuid[], %s::timestamptz[],
                         %s::uuid[])
"""


@totals.on(OrderPlaced)
def keep_totals(events: Sequence[InboundEvent[OrderPlaced]], tx: HandlerContext) -> None:
    """Add each order to its customer's totals, in partition order; emit what it reaches."""
    customers = sorted({inbound.event.customer_id for inbound in events})
    tx.cursor.execute(_LOCK_TOTALS, (tx.consumer_group, customers))
    current = {customer: Totals(n, amount) for customer, n, amount in tx.cursor.fetchall()}
    for inbound in events:
        order = inbound.event
        before = current.get(order.customer_id, Totals())
        after = current[order.customer_id] = before.add(order.amount_cents)
        for milestone, threshold in reached(before, after):
            tx.emit(
                CustomerMilestone(
                    event_id=milestone_event_id(order.customer_id, milestone, threshold),
                    customer_id=order.customer_id,
                    milestone=milestone,
                    threshold=threshold,
                    order_id=order.order_id,
                    reached_at=order.placed_at,
                )
            )
    saved = [(customer, current[customer]) for customer in customers]
    tx.cursor.execute(
        _SAVE_TOTALS,
        (
            tx.consumer_group,
            [customer for customer, _ in saved],
            [t.orders for _, t in saved],
            [t.amount_cents for _, t in saved],
        ),
    )


@milestone_log.on(CustomerMilestone)
def record_milestones(
    events: Sequence[InboundEvent[CustomerMilestone]], tx: HandlerContext
) -> None:
    """One row per milestone reached; a second one for the same milestone would fail."""
    rows = [inbound.event for inbound in events]
    tx.cursor.execute(
        _RECORD_MILESTONES,
        (
            tx.consumer_group,
            [m.customer_id for m in rows],
            [m.milestone for m in rows],
            [m.threshold for m in rows],
            [m.order_id for m in rows],
            [m.reached_at for m in rows],
            [m.event_id for m in rows],
        ),
    )
