"""The example's derived event: ``ReceiptRequested`` (Avro ``side_effects.events``, v1).

Importing this module registers it with oncepipe (``schemas.event_type``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar

from schemas import Event, UtcMillis, event_type

__all__ = ["ReceiptRequested", "receipt_id"]

AVRO = Path(__file__).resolve().parent / "avro"
_RECEIPTS = uuid.UUID("6f1f3c0e-5a8e-4c1b-9a47-3d2f0b7e9c11")


@event_type(AVRO)
class ReceiptRequested(Event):
    """A purchase asks for its receipt to be sent."""

    event_type: ClassVar[str] = "ReceiptRequested"
    key_field: ClassVar[str] = "user_id"

    user_id: str
    item_id: str
    purchased_at: UtcMillis


def receipt_id(purchase_id: uuid.UUID) -> uuid.UUID:
    """The receipt's event id, derived from the purchase's: the same on every re-run."""
    return uuid.uuid5(_RECEIPTS, str(purchase_id))
