"""EventProducer.send: pipelined sends, and every record still gets exactly one answer."""

from __future__ import annotations

import os
import socket
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from oncepipe.settings import Settings
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.settings import ProducerSettings
from tests.fixtures.kafka import read_topic
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_settings(services: Services) -> Settings:
    """Settings pointing at the broker under test (these tests need no database)."""
    return Settings(kafka_bootstrap_servers=services.bootstrap_servers, log_format="console")


def unused_address() -> str:
    """host:port where nothing listens: a broker that never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def records_for(topic: str, count: int, keys: int = 7) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(n, topic, f"key-{n % keys}".encode(), f"value-{n}".encode(), [("n", str(n))])
        for n in range(count)
    ]


def test_send_answers_every_record_exactly_once_with_its_partition_and_offset(
    kafka_settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    records = records_for(topic, 5000)
    deliveries: list[Delivery] = []
    producer = EventProducer(kafka_settings, ProducerSettings())

    producer.send(records, deliveries.append)
    assert producer.flush(60) == 0
    assert producer.close() == 0

    assert Counter(d.ref for d in deliveries) == Counter(range(5000))
    assert all(d.ok and d.partition is not None and d.offset is not None for d in deliveries)
    written = read_topic(kafka_settings.kafka_bootstrap_servers, topic, expected=5000)
    where: dict[tuple[int | None, int | None], bytes] = {
        (r.partition, r.offset): r.value for r in written
    }
    assert len(written) == 5000
    assert all(where[(d.partition, d.offset)] == records[d.ref].value for d in deliveries)


def test_send_keeps_each_keys_records_in_send_order(
    kafka_settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    records = records_for(topic, 3000, keys=11)
    deliveries: list[Delivery] = []
    producer = EventProducer(kafka_settings, ProducerSettings())

    producer.send(records, deliveries.append)
    assert producer.close(60) == 0

    per_key: dict[bytes | None, list[tuple[int, int, int]]] = defaultdict(list)
    for d in deliveries:
        assert d.partition is not None
        assert d.offset is not None
        per_key[records[d.ref].key].append((d.ref, d.partition, d.offset))
    for answers in per_key.values():
        in_send_order = sorted(answers)
        assert len({partition for _, partition, _ in in_send_order}) == 1
        offsets = [offset for _, _, offset in in_send_order]
        assert offsets == sorted(offsets)
    by_key: dict[bytes | None, list[bytes]] = defaultdict(list)
    for record in read_topic(kafka_settings.kafka_bootstrap_servers, topic, expected=3000):
        by_key[record.key].append(record.value)
    for key, values in by_key.items():
        assert values == [r.value for r in records if r.key == key]


def test_send_answers_a_record_over_the_clients_size_limit_with_an_error(
    kafka_settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    too_big = OutgoingRecord(1, topic, b"k", os.urandom(4096))
    fine = OutgoingRecord(2, topic, b"k", b"small")
    deliveries: list[Delivery] = []
    producer = EventProducer(kafka_settings, ProducerSettings(message_max_bytes=2048))

    producer.send([too_big, fine], deliveries.append)
    assert producer.close(30) == 0

    assert sorted(d.ref for d in deliveries) == [1, 2]
    answers = {d.ref: d for d in deliveries}
    assert answers[1].error is not None
    assert answers[1].error.name == "MSG_SIZE_TOO_LARGE"
    assert answers[2].ok


def test_send_answers_a_record_the_broker_refuses_as_too_large_with_an_error(
    kafka_settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(config={"max.message.bytes": "2048"})
    records = [
        OutgoingRecord(1, topic, b"a", b"small"),
        OutgoingRecord(2, topic, b"b", os.urandom(8192)),  # random: lz4 cannot shrink it
    ]
    deliveries: list[Delivery] = []
    producer = EventProducer(kafka_settings, ProducerSettings())

    producer.send(records, deliveries.append)
    assert producer.close(30) == 0

    answers = {d.ref: d for d in deliveries}
    assert len(deliveries) == 2
    assert answers[1].ok
    assert answers[2].error is not None
    assert answers[2].error.name == "MSG_SIZE_TOO_LARGE"


def test_flush_reports_unanswered_records_which_are_answered_later_with_errors(
    kafka_settings: Settings,
) -> None:
    unreachable = kafka_settings.model_copy(update={"kafka_bootstrap_servers": unused_address()})
    producer = EventProducer(unreachable, ProducerSettings(delivery_timeout_ms=1000))
    deliveries: list[Delivery] = []

    producer.send(records_for("nowhere", 5), deliveries.append)

    assert producer.flush(0.2) == 5
    assert deliveries == []
    assert producer.flush(15) == 0
    assert sorted(d.ref for d in deliveries) == list(range(5))
    assert all(d.error is not None and d.error.name == "_MSG_TIMED_OUT" for d in deliveries)


def test_close_answers_every_record_still_queued_with_an_error(kafka_settings: Settings) -> None:
    unreachable = kafka_settings.model_copy(update={"kafka_bootstrap_servers": unused_address()})
    producer = EventProducer(unreachable, ProducerSettings())
    deliveries: list[Delivery] = []

    producer.send(records_for("nowhere", 5), deliveries.append)

    assert producer.close(0.2) == 5
    assert sorted(d.ref for d in deliveries) == list(range(5))
    assert all(not d.ok for d in deliveries)
    assert producer.poll(0.2) == 0
    assert len(deliveries) == 5


def test_send_all_still_returns_one_answer_per_record_in_order(
    kafka_settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    records = records_for(topic, 500)
    producer = EventProducer(kafka_settings, ProducerSettings())

    deliveries = producer.send_all(records)
    producer.close()

    assert [d.ref for d in deliveries] == list(range(500))
    assert all(d.ok and d.offset is not None for d in deliveries)
