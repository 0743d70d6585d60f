"""Dead letters into the outbox, in the batch transaction that moves the offset past them.

The relay publishes them to ``<topic>.dlq``; an unreachable dead-letter topic therefore never
stalls the consumer, and a dead letter is never lost: it commits with the offset move or
neither happens. Each is unique per (dead-letter topic,
``<topic>:<partition>:<offset>:<consumer group>``), so a batch re-run after a crash adds no
second copy, while two groups giving up on one record each get their own dead letter (with
their own group, stage, error and attempts). A dead-lettered record gets no inbox row: a
replay of it, once its cause is fixed, is applied. Key, value (a tombstone's null too) and
headers are the record's bytes as they were.

The dead letter as read back (by ``oncepipe dlq``) is ``consumers.dlq.DeadLetter``; here it is
only the record to write, a ``DeadLetterRecord``.

Public names: ``DeadLetterCandidate``, ``DeadLetterRecord``, ``dead_letter_record``,
``dead_letter_id``, ``enqueue_dead_letters``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers.deadletter_headers import dead_letter_headers
from consumers.decoding import Rejected
from consumers.redact import describe
from producers import enqueue_record
from schemas import dlq_topic_for

__all__ = [
    "DeadLetterCandidate",
    "DeadLetterRecord",
    "dead_letter_id",
    "dead_letter_record",
    "enqueue_dead_letters",
]


@dataclass(frozen=True)
class DeadLetterCandidate:
    """A rejected record to dead-letter, with its failure history."""

    rejected: Rejected
    attempts: int
    first_failure: datetime
    last_failure: datetime
    retry_attempts: str | None = None
    """The JSON list of its delayed retries, for an event that used up its retry tiers."""


def dead_letter_id(topic: str, partition: int, offset: int, group: str) -> str:
    """The outbox dedupe id of a dead letter: its source coordinates, then the consumer group.

    Topic names cannot contain ``:``, so ``split(":", 3)`` takes it apart whatever the group.
    """
    return f"{topic}:{partition}:{offset}:{group}"


@dataclass(frozen=True)
class DeadLetterRecord:
    """The record a dead letter is written as: original key and value, the failure in headers."""

    topic: str
    dedupe_id: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    error_class: str


def dead_letter_record(group: str, item: DeadLetterCandidate) -> DeadLetterRecord:
    """The record to write for one record given up on (``DeadLetterCandidate``)."""
    record = item.rejected
    failure = describe(record.error)
    headers = dead_letter_headers(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        consumer_group=group,
        stage=record.stage,
        failure=failure,
        attempts=item.attempts,
        first_failure=item.first_failure,
        last_failure=item.last_failure,
        original_headers=record.headers,
        headers_unreadable=record.headers_error,
        retry_attempts=item.retry_attempts,
    )
    return DeadLetterRecord(
        topic=dlq_topic_for(record.topic),
        dedupe_id=dead_letter_id(record.topic, record.partition, record.offset, group),
        key=record.key,
        value=record.value,
        headers=headers,
        error_class=failure.error_class,
    )


def enqueue_dead_letters(
    conn: Any, group: str, to_dead_letter: Sequence[DeadLetterCandidate], log: Any
) -> int:
    """Write each dead letter into the outbox on ``conn``'s open transaction; return how many."""
    for item in to_dead_letter:
        letter = dead_letter_record(group, item)
        enqueue_record(
            conn, letter.topic, letter.dedupe_id,
            key=letter.key, value=letter.value, headers=letter.headers,
        )  # fmt: skip
        record = item.rejected
        log.warning(
            "dead letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=record.event_id,
            stage=record.stage,
            error_class=letter.error_class,
            attempts=item.attempts,
        )
    return len(to_dead_letter)
