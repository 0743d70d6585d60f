"""Which milestones an order reaches: pure arithmetic, shared by the handler and the checks.

A customer reaches ``("orders", n)`` with their n-th order and ``("spent_cents", a)`` with the
order that takes their total to ``a`` cents or more; each milestone is reached once, by one
order, so its ``CustomerMilestone`` event id derives from the customer and the milestone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = ["AMOUNTS_CENTS", "ORDER_COUNTS", "Totals", "milestone_event_id", "reached"]

ORDER_COUNTS = (1, 5, 10, 25, 50, 100)
AMOUNTS_CENTS = (10_000, 50_000, 100_000, 250_000, 1_000_000)
_NAMESPACE = uuid.UUID("5f0e3c1e-8a43-4b7e-9a55-0c1f6d2a7b90")


@dataclass(frozen=True, slots=True)
class Totals:
    """One customer's orders and amount so far."""

    orders: int = 0
    amount_cents: int = 0

    def add(self, amount_cents: int) -> Totals:
        """The totals after one more order of ``amount_cents``."""
        return Totals(self.orders + 1, self.amount_cents + amount_cents)


def reached(before: Totals, after: Totals) -> list[tuple[str, int]]:
    """The milestones crossed between ``before`` and ``after``, as (milestone, threshold)."""
    counts = [("orders", n) for n in ORDER_COUNTS if before.orders < n <= after.orders]
    amounts = [
        ("spent_cents", a) for a in AMOUNTS_CENTS if before.amount_cents < a <= after.amount_cents
    ]
    return counts + amounts


def milestone_event_id(customer_id: str, milestone: str, threshold: int) -> uuid.UUID:
    """One event id per (customer, milestone): a re-emit is absorbed by the outbox."""
    return uuid.uuid5(_NAMESPACE, f"{customer_id}\x00{milestone}\x00{threshold}")
