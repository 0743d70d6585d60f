from __future__ import annotations

import pytest

from oncepipe.errors import ConfigError
from oncepipe.kafka import (
    KafkaError,
    KafkaException,
    broker_error,
    create_consumer,
    create_producer,
)
from oncepipe.settings import Settings

SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1")


@pytest.mark.parametrize(
    ("key", "value"),
    [("enable.idempotence", False), ("enable.idempotence", "false"), ("acks", 1), ("acks", "0")],
)
def test_producer_refuses_settings_that_weaken_idempotence(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{key}=.*refused"):
        create_producer(SETTINGS, {key: value})


@pytest.mark.parametrize("acks", ["all", "-1", -1])
def test_producer_accepts_every_spelling_of_acks_all(acks: object) -> None:
    producer = create_producer(SETTINGS, {"acks": acks, "linger.ms": 5})
    producer.flush(0)


@pytest.mark.parametrize(
    ("key", "value"),
    [("enable.auto.commit", True), ("isolation.level", "read_uncommitted")],
)
def test_consumer_refuses_auto_commit_and_dirty_reads(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        create_consumer(SETTINGS, "group", {key: value})


def test_broker_error_keeps_librdkafka_code_and_flags() -> None:
    error = KafkaError(KafkaError._TIMED_OUT, "no answer", retriable=True)
    wrapped = broker_error(KafkaException(error), "producing to events.click")
    assert wrapped.code == KafkaError._TIMED_OUT
    assert wrapped.retriable is True
    assert wrapped.fatal is False
    assert str(wrapped).startswith("producing to events.click: _TIMED_OUT")
