"""The typed Kafka clients against the real broker: what the workers and tools rely on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from oncepipe.kafka import KafkaConsumer, KafkaProducer, Record, TopicPartition
from oncepipe.settings import Settings
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


def _settings(services: Services) -> Settings:
    return Settings(kafka_bootstrap_servers=services.bootstrap_servers)


def _produce(settings: Settings, topic: str, count: int, partition: int = 0) -> None:
    producer = KafkaProducer.create(settings)
    acked: list[bool] = []
    for i in range(count):
        producer.produce(
            topic,
            f"v{i}".encode(),
            partition=partition,
            on_delivery=lambda err, _msg: acked.append(err is None),
        )
    assert producer.flush(30) == 0
    assert acked == [True] * count


def _read(consumer: KafkaConsumer, until: Callable[[list[Record]], bool]) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + 30
    while not until(records) and time.monotonic() < deadline:
        records.extend(r for r in consumer.consume(100, 0.5) if r.error() is None)
    return records


def test_a_subscribed_consumer_gets_its_partitions_through_the_callbacks(
    services: Services, make_topic: Callable[..., str]
) -> None:
    settings = _settings(services)
    topic = make_topic(partitions=2)
    _produce(settings, topic, 3)
    consumer = KafkaConsumer.create(
        settings,
        f"clients-{uuid.uuid4().hex[:8]}",
        {"partition.assignment.strategy": "cooperative-sticky", "auto.offset.reset": "earliest"},
    )
    assigned: list[tuple[str, int]] = []
    revoked: list[tuple[str, int]] = []

    def on_assign(partitions: list[TopicPartition]) -> None:
        assigned.extend((tp.topic, tp.partition) for tp in partitions)
        consumer.incremental_assign(partitions)

    def on_revoke(partitions: list[TopicPartition]) -> None:
        revoked.extend((tp.topic, tp.partition) for tp in partitions)
        consumer.incremental_unassign(partitions)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    try:
        records = _read(consumer, lambda got: len(got) >= 3)
    finally:
        consumer.close()
    assert sorted(assigned) == [(topic, 0), (topic, 1)]
    assert sorted(revoked) == [(topic, 0), (topic, 1)]  # close() leaves the group at once
    assert [(r.topic(), r.partition(), r.offset(), r.value()) for r in records] == [
        (topic, 0, i, f"v{i}".encode()) for i in range(3)
    ]


def test_a_consumer_without_callbacks_subscribes_too(
    services: Services, make_topic: Callable[..., str]
) -> None:
    settings = _settings(services)
    topic = make_topic(partitions=1)
    _produce(settings, topic, 2)
    consumer = KafkaConsumer.auto_committing(
        settings, f"clients-{uuid.uuid4().hex[:8]}", {"auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        records = _read(consumer, lambda got: len(got) >= 2)
    finally:
        consumer.close()
    assert [r.offset() for r in records] == [0, 1]


def test_seek_pause_resume_watermarks_and_commits_of_an_assigned_partition(
    services: Services, make_topic: Callable[..., str]
) -> None:
    settings = _settings(services)
    topic = make_topic(partitions=1)
    _produce(settings, topic, 5)
    consumer = KafkaConsumer.create(settings, f"clients-{uuid.uuid4().hex[:8]}")
    try:
        assert consumer.watermarks(topic, 0, timeout=10) == (0, 5)
        consumer.incremental_assign([TopicPartition(topic, 0, 0)])
        # Not fetching yet: the seek falls back to assigning at the offset.
        consumer.seek(topic, 0, 3)
        assert [r.offset() for r in _read(consumer, lambda got: len(got) >= 2)] == [3, 4]
        consumer.seek(topic, 0, 1)  # fetching now: a plain seek
        consumer.pause([(topic, 0)])
        assert [r for r in consumer.consume(100, 1.0) if r.error() is None] == []
        consumer.resume([(topic, 0)])
        assert [r.offset() for r in _read(consumer, lambda got: len(got) >= 4)] == [1, 2, 3, 4]
        assert consumer.position([TopicPartition(topic, 0)])[0].offset == 5
        consumer.commit([TopicPartition(topic, 0, 5)])
        deadline = time.monotonic() + 30
        committed = -1
        while committed != 5 and time.monotonic() < deadline:
            consumer.poll(0.1)  # serves the asynchronous commit's reply
            committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        assert committed == 5
    finally:
        consumer.close()
