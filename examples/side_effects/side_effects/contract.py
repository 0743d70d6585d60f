"""The example's derived event: ``ReceiptRequested`` (Avro ``side_effects.events``, v1).

Importing this module registers it with oncepipe (``schemas.event_type``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from schemas import Event, UtcMillis, event_type
from side_effects.ids import receipt_id

__all__ = ["ReceiptRequested", "receipt_id"]

AVRO = Path(__file__).resolve().parent / "avro"


@event_type(AVRO)
class ReceiptRequested(Event):
    """A purchase asks for its receipt to be sent."""

    event_type: ClassVar[str] = "ReceiptRequested"
    key_field: ClassVar[str] = "user_id"

    user_id: str
    item_id: str
    purchased_at: UtcMillis
