"""Read a whole topic back, partition by partition, up to its end offsets.

The end-of-run checks read the topics themselves, not what the consumer wrote about them: the
records are the ground truth of "every event in Kafka".

Public names: ``TopicRecord``, ``read_all``, ``end_offsets``, ``value_digest``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from oncepipe.kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from tests.fixtures.hostile import readable_headers

__all__ = ["TopicRecord", "end_offsets", "read_all", "value_digest"]


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """What the checks need of one record."""

    partition: int
    offset: int
    key: str
    event_id: str | None
    size: int
    headers: dict[str, str]
    # Kept with ``keep_headers`` only (dead letters): the bytes as they are on the topic.
    raw_key: bytes | None = None
    value_digest: str | None = None  # sha256 of the value; None for a tombstone (null value)
    raw_headers: tuple[tuple[str, bytes | None], ...] | None = ()  # None: unreadable


def value_digest(value: bytes | None) -> str | None:
    """The digest the checks compare values by (None for a null value)."""
    return None if value is None else hashlib.sha256(value).hexdigest()


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.message.max.bytes": 4 * 1024 * 1024,
        }
    )


def end_offsets(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[int, int]:
    """The end (high watermark) of every partition of ``topic``."""
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1])
            for p in sorted(partitions)
        }
    finally:
        consumer.close()


def read_all(
    bootstrap: str, topic: str, *, keep_headers: bool = False, timeout: float = 300.0
) -> list[TopicRecord]:
    """Every record of ``topic`` from the start to its current end, by (partition, offset).

    Only the ``event_id`` header is kept unless ``keep_headers`` (dead letters need theirs).
    """
    ends = end_offsets(bootstrap, topic)
    consumer = _consumer(bootstrap)
    records: list[TopicRecord] = []
    try:
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(2000, timeout=0.5):
                if message.error() is not None:
                    continue
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                raw = readable_headers(message)
                headers: dict[str, str] = {
                    name: value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
                    for name, value in raw or ()
                }
                key, value = message.key(), message.value()
                records.append(
                    TopicRecord(
                        partition=partition,
                        offset=offset,
                        key=key.decode("utf-8", "replace") if key else "",
                        event_id=headers.get("event_id"),
                        size=len(value or b""),
                        headers=headers if keep_headers else {},
                        raw_key=key if keep_headers else None,
                        value_digest=value_digest(value) if keep_headers else None,
                        raw_headers=raw if keep_headers else (),
                    )
                )
                if offset + 1 >= ends[partition]:
                    todo.discard(partition)
        if todo:
            raise TimeoutError(f"could not read {topic} partitions {sorted(todo)} to their end")
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records
