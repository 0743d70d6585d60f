"""Records no oncepipe producer would write: hostile headers, tombstones, limit-sized values.

Header VALUES that are not text (a NUL byte, ``ff fe 80``, a null value) and tombstones (a
null record value) are produced with confluent-kafka. Header NAMES that are not UTF-8 cannot
be: the client takes names only as ``str`` (a bytes name is sent as its ``repr``). Those go
through ``produce_with_non_utf8_header_names``, the tests' own raw protocol writer
(``tests/fixtures/hostile.py``).

Every record the checks must find again is written to a manifest line with its coordinates
and, for dead letters, the bytes its dead letter must carry (``exact``).

Public names: ``HostileRecord``, ``HOSTILE_HEADERS``, ``NON_UTF8_NAME``,
``NEAR_LIMIT_BYTES``, ``produce``, ``produce_with_non_utf8_header_names``, ``locate``,
``exact_line``.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from typing import Any

from oncepipe.kafka import AdminClient, Consumer, Producer, TopicPartition
from tests.faults.chaos.topic import end_offsets, value_digest
from tests.fixtures.hostile import HostileRecord, produce_raw

__all__ = [
    "HOSTILE_HEADERS",
    "NEAR_LIMIT_BYTES",
    "NON_UTF8_NAME",
    "HostileRecord",
    "exact_line",
    "locate",
    "produce",
    "produce_with_non_utf8_header_names",
]

Coordinates = tuple[str, int, int]
RawHeader = tuple[bytes, bytes | None]

# Header values a dead letter must carry back byte for byte (names are plain here).
HOSTILE_HEADERS: tuple[RawHeader, ...] = (
    (b"nul", b"before\x00after"),
    (b"not-utf8", b"\xff\xfe\x80"),
    (b"null-value", None),
    (b"empty", b""),
)
NON_UTF8_NAME: RawHeader = (b"name-\xff\xfe", b"value")
# An undecodable record just under the topic's 1 MiB limit (1,048,576 bytes per record batch):
# its dead letter adds ~1 KB of headers, more than a 1 MiB producer limit allows.
NEAR_LIMIT_BYTES = 1_048_400


def produce(
    bootstrap: str, topic: str, records: Sequence[HostileRecord], *, max_bytes: int = 2_000_000
) -> list[Coordinates]:
    """Produce ``records`` (names must be UTF-8) with confluent-kafka; their coordinates."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": max_bytes,
        }
    )
    written: dict[int, Coordinates] = {}
    errors: list[str] = []

    def delivered(index: int, err: Any, msg: Any) -> None:
        if err is None:
            written[index] = (msg.topic(), msg.partition(), msg.offset())
        else:
            errors.append(str(err))

    for index, record in enumerate(records):
        headers: list[tuple[str, str | bytes | None]] = [
            (name.decode(), value) for name, value in record.headers
        ]
        producer.produce(
            topic, key=record.key, value=record.value, headers=headers,
            on_delivery=functools.partial(delivered, index),
        )  # fmt: skip
    if producer.flush(60):
        raise TimeoutError(f"hostile records to {topic} not delivered within 60 s")
    if errors:
        raise RuntimeError(f"{len(errors)} records refused by {topic}: {errors[0]}")
    return [written[index] for index in range(len(records))]


def produce_with_non_utf8_header_names(
    bootstrap: str, topic: str, records: Sequence[HostileRecord]
) -> None:
    """Produce records whose header names need not be UTF-8, all to partition 0.

    Through the tests' own raw protocol writer (``tests/fixtures/hostile.py``): no Kafka
    client takes a header name as bytes. The caller finds the records again by key
    (``locate``).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    produce_raw(admin, topic, 0, records)


def locate(
    bootstrap: str, topic: str, since: dict[int, int], keys: set[bytes], timeout: float = 60.0
) -> list[tuple[bytes, Coordinates]]:
    """The records carrying one of ``keys`` at or after ``since`` (partition -> offset).

    Reads keys only: a record whose header names are not UTF-8 cannot have its headers read.
    """
    ends = end_offsets(bootstrap, topic)
    todo = {p for p, end in ends.items() if end > since.get(p, 0)}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-locate-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.message.max.bytes": 4 * 1024 * 1024,
        }
    )
    found: list[tuple[bytes, Coordinates]] = []
    try:
        consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None:
                    continue
                partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                key = message.key()
                if isinstance(key, bytes) and key in keys:
                    found.append((key, (topic, partition, offset)))
                if offset + 1 >= ends[partition]:
                    todo.discard(partition)
    finally:
        consumer.close()
    return found


def exact_line(where: Coordinates, record: HostileRecord, *, readable: bool) -> dict[str, Any]:
    """The poison manifest line of a record whose dead letter must carry its bytes back.

    ``headers`` is None when the consumer cannot read them (non-UTF-8 names): then only key
    and value are compared.
    """
    return {
        "topic": where[0],
        "partition": where[1],
        "offset": where[2],
        "exact": True,
        "key": None if record.key is None else record.key.hex(),
        "value": value_digest(record.value),
        "headers": (
            [[name.hex(), None if value is None else value.hex()] for name, value in record.headers]
            if readable
            else None
        ),
    }
