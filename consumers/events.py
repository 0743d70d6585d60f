"""What a handler receives: a validated event plus where it came from.

Public names: ``InboundEvent``, ``Coordinates``, ``Key``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import BaseModel

from oncepipe.kafka import RawHeaders

__all__ = ["Coordinates", "InboundEvent", "Key"]

Coordinates = tuple[str, int]
"""A (topic, partition) pair."""

Key = tuple[str, int, int]
"""A (topic, partition, offset) triple: where one record sits."""


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One decoded, validated event and the Kafka record it was read from."""

    event: BaseModel
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
