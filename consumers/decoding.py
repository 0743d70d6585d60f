"""Kafka records to ``InboundEvent``s with the schema batch API; poison stops a partition.

Public names: ``Decoder``, ``DecodedBatch``, ``Poison``, ``decode_records``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from consumers.events import Coordinates, InboundEvent

__all__ = ["DecodedBatch", "Decoder", "Poison", "decode_records"]


class Decoder(Protocol):
    """What the runtime needs of ``schemas.Codec``."""

    def decode_batch(self, values: list[bytes]) -> Sequence[BaseModel | Exception]:
        """Decode and validate each value; a failure is returned in its slot."""
        ...


@dataclass(frozen=True)
class Poison:
    """A record that can never become an event as it is."""

    topic: str
    partition: int
    offset: int
    stage: str
    error: str

    def describe(self) -> str:
        """One line naming the record and the reason."""
        return f"{self.topic}[{self.partition}]@{self.offset} failed at {self.stage}: {self.error}"


@dataclass
class DecodedBatch:
    """The events before each partition's first poison record, and those poison records."""

    events: list[InboundEvent] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)


def _poison(record: Any, stage: str, error: str) -> Poison:
    return Poison(record.topic(), record.partition(), record.offset(), stage, error)


def decode_records(decoder: Decoder, records: Sequence[Any]) -> DecodedBatch:
    """Decode ``records`` (Kafka messages in partition order); stop each partition at poison.

    Nothing after a partition's first poison record is kept, so the offset stored for that
    partition never moves past it.
    """
    batch = DecodedBatch()
    with_value = [r for r in records if r.value() is not None]
    results = decoder.decode_batch([r.value() for r in with_value]) if with_value else []
    decoded = {id(r): result for r, result in zip(with_value, results, strict=True)}
    stopped: set[Coordinates] = set()
    for record in records:
        where = (record.topic(), record.partition())
        if where in stopped:
            continue
        result = decoded.get(id(record))
        if result is None:
            batch.poison.append(_poison(record, "decode", "record has no value (tombstone)"))
            stopped.add(where)
            continue
        if isinstance(result, Exception):
            stage = str(getattr(result, "stage", "decode"))
            batch.poison.append(_poison(record, stage, f"{type(result).__name__}: {result}"))
            stopped.add(where)
            continue
        event_id = getattr(result, "event_id", None)
        if not isinstance(event_id, uuid.UUID):
            batch.poison.append(_poison(record, "validate", "event has no UUID event_id"))
            stopped.add(where)
            continue
        _, timestamp = record.timestamp()
        batch.events.append(
            InboundEvent(
                event=result,
                event_id=event_id,
                topic=where[0],
                partition=where[1],
                offset=record.offset(),
                key=record.key(),
                timestamp_ms=timestamp if timestamp >= 0 else None,
            )
        )
    return batch
