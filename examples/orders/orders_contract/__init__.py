"""The orders team's event contract, release 2: ``OrderPlaced`` (v1, v2) and ``CustomerMilestone``.

Every ``.avsc`` version ever published stays in ``avro/`` (events written with it may still sit
in a topic); each model mirrors the newest version of its type, and oncepipe refuses to load a
model whose fields differ from it. Importing this module registers both types with oncepipe
(``schemas.event_type``), so the codec, the schema store and ``oncepipe schema`` know them.

Release 2 added ``OrderPlaced.channel`` (v2) with a default, so release-1 consumers read
release-2 events (the new field is dropped) and release-2 consumers read release-1 events
(``channel`` is ``"unknown"``). Release 1 is kept as it shipped in ``releases/contract-1/``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar

from schemas import Event, UtcMillis, event_type

__all__ = ["RELEASE", "CustomerMilestone", "OrderPlaced"]

RELEASE = 2
AVRO = Path(__file__).resolve().parent / "avro"


@event_type(AVRO)
class OrderPlaced(Event):
    """A customer placed an order (Avro ``orders.events.OrderPlaced``, v2)."""

    event_type: ClassVar[str] = "OrderPlaced"
    key_field: ClassVar[str] = "customer_id"

    order_id: uuid.UUID
    customer_id: str
    amount_cents: int
    placed_at: UtcMillis
    channel: str = "unknown"


@event_type(AVRO)
class CustomerMilestone(Event):
    """A customer reached an order count or an amount spent (Avro ``CustomerMilestone``)."""

    event_type: ClassVar[str] = "CustomerMilestone"
    key_field: ClassVar[str] = "customer_id"

    customer_id: str
    milestone: str
    threshold: int
    order_id: uuid.UUID
    reached_at: UtcMillis
