"""The orders team's event contract, release 1, kept as it shipped: ``OrderPlaced`` v1 only.

A consumer "still on release 1" runs with this folder first on its ``PYTHONPATH``: it knows
``order_placed.v1.avsc`` and the v1 model and nothing else, and reads the events of release-2
producers through the schema store (their v2 writer schema, looked up by fingerprint). Never
edit this copy: it stands for a published package.

Every ``.avsc`` version ever published stays in ``avro/`` (events written with it may still sit
in a topic); each model mirrors the newest version of its type, and oncepipe refuses to load a
model whose fields differ from it. Importing this module registers both types with oncepipe
(``schemas.event_type``), so the codec, the schema store and ``oncepipe schema`` know them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import ClassVar

from schemas import Event, UtcMillis, event_type

__all__ = ["RELEASE", "CustomerMilestone", "OrderPlaced"]

RELEASE = 1
AVRO = Path(__file__).resolve().parent / "avro"


@event_type(AVRO)
class OrderPlaced(Event):
    """A customer placed an order (Avro ``orders.events.OrderPlaced``, v1)."""

    event_type: ClassVar[str] = "OrderPlaced"
    key_field: ClassVar[str] = "customer_id"

    order_id: uuid.UUID
    customer_id: str
    amount_cents: int
    placed_at: UtcMillis


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
