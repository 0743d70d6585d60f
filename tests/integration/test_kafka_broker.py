"""The native broker does what the pipeline needs: idempotence, transactions, isolation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from oncepipe.kafka import Consumer, Producer, TopicPartition, create_consumer, create_producer
from oncepipe.settings import Settings
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


def _settings(services: Services) -> Settings:
    return Settings(kafka_bootstrap_servers=services.bootstrap_servers)


def consume_all(
    consumer: Consumer, topic: str, partitions: int, expected: int, timeout: float = 30
) -> list[bytes]:
    """Read from the start of every partition until ``expected`` values or the timeout."""
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=0.5):
            if message.error() is None:
                values.append(message.value() or b"")
    # Drain a little longer so extra (unexpected) records would be seen too.
    for message in consumer.consume(500, timeout=1.0):
        if message.error() is None:
            values.append(message.value() or b"")
    return values


def test_topics_are_created_with_the_requested_partitions(
    make_topic: Callable[..., str], kafka_admin
) -> None:
    topic = make_topic(partitions=6)
    metadata = kafka_admin.list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 6


def test_idempotent_producer_delivers_every_record_once(
    services: Services, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    producer = create_producer(_settings(services), {"linger.ms": 5})
    acked: list[int] = []
    for i in range(200):
        producer.produce(
            topic,
            key=str(i % 7),
            value=f"v{i}".encode(),
            on_delivery=lambda err, msg: acked.append(0 if err else 1),
        )
    assert producer.flush(30) == 0
    assert acked == [1] * 200
    consumer = create_consumer(_settings(services), f"g-{uuid.uuid4().hex}")
    try:
        values = consume_all(consumer, topic, 3, 200)
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(200))


def test_read_committed_sees_committed_transactions_and_never_aborted_ones(
    services: Services, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    producer = Producer(
        {
            "bootstrap.servers": services.bootstrap_servers,
            "transactional.id": f"tx-{uuid.uuid4().hex}",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=str(i), value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=str(i), value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    consumer = create_consumer(_settings(services), f"g-{uuid.uuid4().hex}")
    try:
        values = consume_all(consumer, topic, 2, 10)
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"committed-{i}".encode() for i in range(10))


@pytest.mark.faults
@pytest.mark.slow
def test_broker_sigkill_and_restart_keeps_acknowledged_records(
    services: Services, make_topic: Callable[..., str]
) -> None:
    kafka, _ = services.require_native()
    topic = make_topic(partitions=2)
    producer = create_producer(_settings(services))
    for i in range(100):
        producer.produce(topic, value=f"durable-{i}".encode())
    assert producer.flush(30) == 0

    assert kafka.kill()
    kafka.start()

    consumer = create_consumer(_settings(services), f"g-{uuid.uuid4().hex}")
    try:
        values = consume_all(consumer, topic, 2, 100, timeout=60)
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"durable-{i}".encode() for i in range(100))
