"""Kafka records to ``InboundEvent``s with the schema batch API; failures are kept per record.

A record whose headers the Kafka client cannot read (a header NAME that is not UTF-8 makes
confluent-kafka's ``Message.headers()`` raise) is rejected as poison, even when its value is a
valid event: oncepipe does not apply a record it can only read in part, and its dead letter
(key and value byte-exact, marked ``dlq.headers.unreadable``) replays without those headers.

Public names: ``Decoder``, ``DecodedBatch``, ``Rejected``, ``TombstoneError``,
``MissingEventIdError``, ``UnreadableHeadersError``, ``decode_records``, ``read_headers``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from consumers.deadletter_headers import Stage
from consumers.events import Coordinates, InboundEvent
from oncepipe.errors import PoisonError
from oncepipe.kafka import HeadersUnreadableError, RawHeaders, message_headers

__all__ = [
    "DecodedBatch",
    "Decoder",
    "MissingEventIdError",
    "Rejected",
    "StoredRow",
    "TombstoneError",
    "UnreadableHeadersError",
    "decode_records",
    "read_headers",
    "stored_events",
]


class Decoder(Protocol):
    """What the runtime needs of ``schemas.Codec``."""

    def decode_batch(self, values: list[bytes]) -> Sequence[BaseModel | Exception]:
        """Decode and validate each value; a failure is returned in its slot."""
        ...


class TombstoneError(PoisonError):
    """The record has no value; an event always has one."""


class MissingEventIdError(PoisonError):
    """The record decoded into a model without a UUID ``event_id``, so it cannot be deduped."""


class UnreadableHeadersError(PoisonError):
    """The Kafka client cannot read the record's headers (a header name is not UTF-8)."""


def read_headers(record: Any) -> tuple[RawHeaders, str | None]:
    """The record's headers, or none and why the client could not read them.

    confluent-kafka hands header names over as ``str`` only: a name that is not UTF-8 makes
    ``headers()`` raise (``SystemError`` from a ``UnicodeDecodeError``).
    """
    try:
        return tuple(message_headers(record)), None
    except HeadersUnreadableError as exc:
        return (), str(exc)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that failed at ``stage``, with everything its dead letter needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RawHeaders
    timestamp_ms: int | None
    stage: Stage
    error: BaseException
    event_id: str | None = None
    """The decoded event's id, else the record's ``event_id`` header, else None."""
    headers_error: str | None = None
    """Why the client could not read the record's headers (then ``headers`` is empty)."""

    @property
    def coordinates(self) -> Coordinates:
        """The (topic, partition) the record was read from."""
        return (self.topic, self.partition)

    @classmethod
    def of_event(cls, inbound: InboundEvent, error: BaseException) -> Rejected:
        """A decoded event its handler failed on."""
        return cls(
            inbound.topic,
            inbound.partition,
            inbound.offset,
            inbound.key,
            inbound.value,
            inbound.headers,
            inbound.timestamp_ms,
            "handle",
            error,
            str(inbound.event_id),
        )


@dataclass
class DecodedBatch:
    """The events that decoded, and the records that did not, each in partition order."""

    events: list[InboundEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _header_event_id(headers: RawHeaders) -> str | None:
    for name, raw in headers:
        if name == "event_id" and raw:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            return text[:64]
    return None


def _reject(
    record: Any,
    headers: RawHeaders,
    stage: Stage,
    error: BaseException,
    headers_error: str | None = None,
) -> Rejected:
    _, timestamp = record.timestamp()
    return Rejected(
        record.topic(),
        record.partition(),
        record.offset(),
        record.key(),
        record.value(),
        headers,
        timestamp if timestamp >= 0 else None,
        stage,
        error,
        _header_event_id(headers),
        headers_error,
    )


def decode_records(decoder: Decoder, records: Sequence[Any]) -> DecodedBatch:
    """Decode ``records`` (Kafka messages in partition order); each becomes one or the other.

    Raises what ``decode_batch`` raises (a schema store that cannot be reached): that is
    about the worker, not about any record.
    """
    batch = DecodedBatch()
    with_value = [r for r in records if r.value() is not None]
    results = decoder.decode_batch([r.value() for r in with_value]) if with_value else []
    decoded = {id(r): result for r, result in zip(with_value, results, strict=True)}
    for record in records:
        headers, headers_error = read_headers(record)
        result = decoded.get(id(record))
        if result is None:
            error: BaseException = TombstoneError(
                "the record has no value (a tombstone); events always have one"
            )
            batch.rejected.append(_reject(record, headers, "decode", error, headers_error))
            continue
        if isinstance(result, Exception):
            stage: Stage = "validate" if getattr(result, "stage", "") == "validate" else "decode"
            batch.rejected.append(_reject(record, headers, stage, result, headers_error))
            continue
        if headers_error is not None:
            # A valid event too: a record read only in part is not applied.
            error = UnreadableHeadersError(
                f"the Kafka client cannot read the record's headers ({headers_error}); "
                "a header name is probably not UTF-8"
            )
            batch.rejected.append(_reject(record, headers, "decode", error, headers_error))
            continue
        event_id = getattr(result, "event_id", None)
        if not isinstance(event_id, uuid.UUID):
            error = MissingEventIdError(
                f"a {type(result).__name__} has no UUID event_id; it cannot be deduplicated"
            )
            batch.rejected.append(_reject(record, headers, "validate", error))
            continue
        _, timestamp = record.timestamp()
        batch.events.append(
            InboundEvent(
                event=result,
                event_id=event_id,
                topic=record.topic(),
                partition=record.partition(),
                offset=record.offset(),
                key=record.key(),
                timestamp_ms=timestamp if timestamp >= 0 else None,
                value=record.value(),
                headers=headers,
            )
        )
    return batch


@dataclass(frozen=True)
class StoredRow:
    """An event kept in a table of ours (parked, or waiting for a retry), as its row holds it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event_id: uuid.UUID
    value: bytes
    headers: RawHeaders
    timestamp_ms: int | None


def stored_events(decoder: Decoder, rows: Sequence[StoredRow], *, what: str) -> list[InboundEvent]:
    """The events of ``rows`` decoded again, in the order given.

    They decoded when they were stored, so a failure now means the registered schemas changed
    under them: ``RuntimeError`` (the batch is retried, nothing is lost) naming ``what`` and the
    record, and what to do.
    """
    if not rows:
        return []
    events: list[InboundEvent] = []
    for row, model in zip(rows, decoder.decode_batch([r.value for r in rows]), strict=True):
        if isinstance(model, Exception):
            raise RuntimeError(
                f"{what} ({row.topic}[{row.partition}]@{row.offset}) no longer decodes "
                f"({model}); restore its schema"
            ) from model
        events.append(
            InboundEvent(
                event=model, event_id=row.event_id, topic=row.topic, partition=row.partition,
                offset=row.offset, key=row.key, timestamp_ms=row.timestamp_ms, value=row.value,
                headers=row.headers,
            )
        )  # fmt: skip
    return events
