"""What a handler receives: a validated event plus where it came from.

``InboundEvent`` is generic in its event's model: a handler of one type declares
``Sequence[InboundEvent[OrderPlaced]]`` and gets ``inbound.event`` typed as ``OrderPlaced``;
plain ``InboundEvent`` is ``InboundEvent[BaseModel]``, any event.

Public names: ``InboundEvent``, ``Coordinates``, ``Key``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from oncepipe.kafka import RawHeaders

__all__ = ["Coordinates", "InboundEvent", "Key"]

# Covariant: a batch of InboundEvent[OrderPlaced] is a batch of InboundEvent. The default keeps
# plain ``InboundEvent`` meaning "any event" (a TypeVar default needs typing_extensions on 3.11).
EventT_co = TypeVar("EventT_co", bound=BaseModel, default=BaseModel, covariant=True)

Coordinates = tuple[str, int]
"""A (topic, partition) pair."""

Key = tuple[str, int, int]
"""A (topic, partition, offset) triple: where one record sits."""


@dataclass(frozen=True, slots=True)
class InboundEvent(Generic[EventT_co]):
    """One decoded, validated event and the Kafka record it was read from."""

    event: EventT_co
    event_id: uuid.UUID
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp_ms: int | None = None
    value: bytes | None = None
    """The original value bytes: what a dead letter of this event carries."""
    headers: RawHeaders = ()

    @property
    def coordinates(self) -> Coordinates:
        """The (topic, partition) this event was read from."""
        return (self.topic, self.partition)

    def log_fields(self) -> dict[str, object]:
        """The fields every message-level log line carries."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "event_id": str(self.event_id),
        }
