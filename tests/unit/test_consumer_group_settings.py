"""Group membership settings: protocol, session timeout, static membership (issue 25)."""

from __future__ import annotations

import pytest

from consumers.settings import ConsumerSettings, load_consumer_settings
from oncepipe.errors import ConfigError
from oncepipe.kafka import Consumer, KafkaError, broker_error, consumer_config, is_fatal
from oncepipe.settings import Settings

CLASSIC_ONLY = {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"}


def test_classic_protocol_sets_the_session_heartbeat_and_cooperative_assignor() -> None:
    config = ConsumerSettings(session_timeout_ms=10_000).client_config()
    assert config["group.protocol"] == "classic"
    assert config["session.timeout.ms"] == 10_000
    assert config["heartbeat.interval.ms"] == 3_333
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert "group.instance.id" not in config


def test_consumer_protocol_leaves_the_broker_owned_keys_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP_PROTOCOL", "consumer")
    config = load_consumer_settings().client_config()
    assert config["group.protocol"] == "consumer"
    assert not CLASSIC_ONLY & set(config)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_librdkafka_accepts_the_config_built_for_each_protocol(protocol: str) -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9")
    group = ConsumerSettings(group_protocol=protocol, instance_id="slot-1")
    # librdkafka refuses the classic-only keys under the consumer protocol at construction.
    client = Consumer(consumer_config(settings, "g", group.client_config()))
    client.close()


def test_a_session_timeout_under_the_consumer_protocol_is_refused_with_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP_PROTOCOL", "consumer")
    with pytest.raises(ConfigError) as caught:
        load_consumer_settings(session_timeout_ms=6000)
    message = str(caught.value)
    assert "ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS" in message
    assert "group.consumer.session.timeout.ms" in message
    assert "\n" not in message


def test_an_unknown_protocol_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP_PROTOCOL", "share")
    with pytest.raises(ConfigError, match="ONCEPIPE_CONSUMER_GROUP_PROTOCOL"):
        load_consumer_settings()


def test_instance_id_becomes_the_static_member_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_INSTANCE_ID", "orders-worker-2")
    assert load_consumer_settings().client_config()["group.instance.id"] == "orders-worker-2"


def test_an_instance_id_kafka_would_refuse_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ONCEPIPE_CONSUMER_INSTANCE_ID"):
        load_consumer_settings(instance_id="worker 2")


def test_an_empty_session_timeout_variable_counts_as_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP_PROTOCOL", "consumer")
    monkeypatch.setenv("ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS", "")
    assert "session.timeout.ms" not in load_consumer_settings().client_config()


def test_the_fatal_error_event_of_a_fenced_static_member_counts_as_fatal() -> None:
    fenced = KafkaError(KafkaError._FATAL, "instance ID is still used by another member")
    assert is_fatal(fenced)
    assert broker_error(fenced, "consuming").fatal
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT, "connection reset"))


def test_the_prefetch_queue_is_bounded_to_16_mb_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_consumer_settings().client_config()["queued.max.messages.kbytes"] == 8_192
    monkeypatch.setenv("ONCEPIPE_CONSUMER_PREFETCH_KBYTES", "4096")
    assert load_consumer_settings().client_config()["queued.max.messages.kbytes"] == 4_096
