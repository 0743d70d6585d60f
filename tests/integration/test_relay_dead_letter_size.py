"""Every dead letter of a record its source topic accepted reaches the dead-letter topic.

A dead letter is the source record (key, value and headers, at most the source topic's limit)
plus the ``dlq.*`` failure context. The relay's client and the ``.dlq`` topic are sized for
both; a failure context that still does not fit loses its least important parts (stack trace,
then error message), never the original bytes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consumers.deadletter_headers import STACKTRACE
from oncepipe.kafka import AdminClient, create_producer
from oncepipe.settings import Settings
from producers import outbox
from producers.recordsize import TRIMMED, record_size
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings, TopicSettings
from producers.topics import create_event_topics
from schemas import dlq_topic_for
from tests.fixtures.kafka import read_topic
from tests.fixtures.poison import dead_letters
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, wait_until

pytestmark = pytest.mark.integration

# The project's own topic limit (ONCEPIPE_PRODUCER_MESSAGE_MAX_BYTES): the source topic takes a
# record up to this size (key, value, headers and the batch framing).
SOURCE_LIMIT = ProducerSettings().message_max_bytes


@pytest.fixture
def event_topic(kafka_admin: AdminClient) -> Iterator[str]:
    """An event topic and its .dlq, created as ``oncepipe topics create`` does; deleted after."""
    topic = f"events.size{uuid.uuid4().hex[:8]}"
    created = create_event_topics(
        kafka_admin, [topic], TopicSettings(partitions=2), ProducerSettings()
    )
    assert created == [topic, dlq_topic_for(topic)]
    yield topic
    for future in kafka_admin.delete_topics(created, operation_timeout=30).values():
        future.result(timeout=60)


def produce_raw(
    settings: Settings, topic: str, key: bytes, value: bytes, headers: list[tuple[str, Any]]
) -> None:
    """One uncompressed record as a foreign client would write it (its client allows 2 MB)."""
    producer = create_producer(
        settings, {"message.max.bytes": 2_000_000, "compression.type": "none", "linger.ms": 0}
    )
    errors: list[object] = []
    producer.produce(
        topic, value, key, headers=headers, on_delivery=lambda err, _msg: errors.append(err)
    )
    assert producer.flush(60) == 0
    assert errors == [None], f"the source topic refused the record: {errors}"


def test_a_near_limit_undecodable_record_becomes_a_dead_letter_on_its_dlq_topic(
    settings: Settings,
    event_topic: str,
    tmp_path: Path,
    relay_thread: Callable[..., RelayThread],
) -> None:
    key = b"user-near-limit"
    headers: list[tuple[str, Any]] = [("event_id", str(uuid.uuid4())), ("trace", "t" * 200)]
    value = b"\x00not avro" + os.urandom(1_048_200 - 9)  # just under the topic limit
    produce_raw(settings, event_topic, key, value, headers)

    pool = WorkerPool(settings, tmp_path, f"g-{uuid.uuid4().hex[:8]}", event_topic)
    try:
        worker = pool.start(handler="clicks")
        relay_thread()
        url = settings.database_url.get_secret_value()
        wait_until(caught_up(url, pool.group, 1), 60, "the worker to dead-letter the record")
        assert worker.terminate() == 0, worker.text()[-3000:]
    finally:
        pool.reap()

    [letter] = dead_letters(settings, dlq_topic_for(event_topic), expected=1)
    assert (letter.key, letter.value) == (key, value)
    assert (letter.source_topic, letter.stage) == (event_topic, "decode")
    assert dict(letter.headers)["trace"] == b"t" * 200
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT published_at IS NOT NULL, failed_at IS NULL, last_error FROM oncepipe.outbox"
        ).fetchone()
    assert row == (True, True, None)


def test_a_dead_letter_whose_context_does_not_fit_loses_its_stack_trace_not_its_bytes(
    settings: Settings, event_topic: str
) -> None:
    dlq_topic = dlq_topic_for(event_topic)
    # Headers of the source record as large as the source topic allowed, plus a failure
    # context far over the bounds dead_letter_headers keeps (a foreign writer, say).
    original = [(f"h{n}", "x" * 1000) for n in range(20)]
    context = [
        ("dlq.original.topic", event_topic),
        ("dlq.stage", "decode"),
        ("dlq.error.class", "schemas.errors.BadMagicError"),
        ("dlq.error.message", "m" * 100_000),
        (STACKTRACE, "s" * 60_000),
    ]
    key = b"k"
    value = os.urandom(SOURCE_LIMIT - record_size(key, b"", original) - 200)
    assert record_size(key, value, original) <= SOURCE_LIMIT
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn, conn.transaction():
        outbox.enqueue_record(
            conn, dlq_topic, "source-0-0", key=key, value=value, headers=original + context
        )
    relay = Relay(settings, RelaySettings(), ProducerSettings(linger_ms=1))
    try:
        assert relay.run_once() == 1
    finally:
        relay.request_stop()
        relay.run()  # closes its connections and producer

    [record] = read_topic(settings.kafka_bootstrap_servers, dlq_topic, expected=1)
    assert (record.key, record.value) == (key, value)
    assert [(n, record.headers[n]) for n, _ in original] == original
    assert STACKTRACE not in record.headers
    assert record.headers["dlq.error.message"] == "m" * 256
    assert record.headers[TRIMMED] == f"{STACKTRACE},dlq.error.message"
    assert record.headers["dlq.stage"] == "decode"
