"""The receipt's event id, derived from the purchase's (no event type registered here).

Kept apart from ``contract`` so that a caller needing only the id (a test, a downstream) does
not register ``ReceiptRequested`` in its process by importing it.
"""

from __future__ import annotations

import uuid

__all__ = ["receipt_id"]

_RECEIPTS = uuid.UUID("6f1f3c0e-5a8e-4c1b-9a47-3d2f0b7e9c11")


def receipt_id(purchase_id: uuid.UUID) -> uuid.UUID:
    """The receipt's event id, derived from the purchase's: the same on every re-run."""
    return uuid.uuid5(_RECEIPTS, str(purchase_id))
