"""Every Kafka client's configuration starts from the one connection config.

The connection keys (where the brokers are; security settings next) are written in one place,
``oncepipe.kafka.connection_config``. A marker key added there must reach every client oncepipe
creates: workers, producers, admin clients, the dead-letter reader, the offsets tool and the
demo's consumers. The weakening guard still refuses overrides on the way.
"""

from __future__ import annotations

import ast
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consumers import group as kafka_group
from consumers.dlq.reader import DeadLetterReader, Selection
from demo import naive
from demo.watch import Watch
from oncepipe import kafka
from oncepipe.errors import ConfigError
from oncepipe.kafka import (
    KafkaConsumer,
    KafkaProducer,
    admin_config,
    connection_config,
    consumer_config,
    create_admin,
    create_consumer,
    create_producer,
    producer_config,
)
from oncepipe.settings import Settings
from producers.producer import EventProducer
from producers.settings import ProducerSettings

SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1")
ROOT = Path(__file__).resolve().parents[2]
# A real librdkafka property, so the clients below would accept it too.
MARKER = {"client.rack": "connection-config-marker"}


class _BuiltError(Exception):
    """Raised by the stand-in client classes once they have seen their config."""

    def __init__(self, kind: str, config: dict[str, Any]) -> None:
        super().__init__(kind)
        self.kind = kind
        self.config = config


def _stand_in(kind: str) -> Callable[..., Any]:
    def build(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        raise _BuiltError(kind, config)

    return build


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection config carries a marker; client classes record their config instead."""
    original = kafka.connection_config
    monkeypatch.setattr(kafka, "connection_config", lambda s: {**original(s), **MARKER})
    for kind in ("Consumer", "Producer", "AdminClient"):
        monkeypatch.setattr(kafka, kind, _stand_in(kind))
    # The naive consumer installs a SIGTERM handler before it builds its client.
    monkeypatch.setattr(signal, "signal", lambda *_: None)


def _run_naive() -> None:
    naive.run_naive_consumer(SETTINGS, run="r", group="naive-group", topic="t")


CLIENTS: dict[str, tuple[str, Callable[[], object]]] = {
    "create_producer": ("Producer", lambda: create_producer(SETTINGS)),
    "create_consumer": ("Consumer", lambda: create_consumer(SETTINGS, "g")),
    "create_admin": ("AdminClient", lambda: create_admin(SETTINGS)),
    "KafkaProducer.create": ("Producer", lambda: KafkaProducer.create(SETTINGS)),
    "KafkaConsumer.create": ("Consumer", lambda: KafkaConsumer.create(SETTINGS, "g")),
    "KafkaConsumer.auto_committing": (
        "Consumer",
        lambda: KafkaConsumer.auto_committing(SETTINGS, "g"),
    ),
    "EventProducer (relay, replay, simulator)": (
        "Producer",
        lambda: EventProducer(SETTINGS, ProducerSettings()),
    ),
    "dead-letter reader": ("Consumer", lambda: DeadLetterReader(SETTINGS).select(Selection())),
    "offsets tool: partition bounds": (
        "Consumer",
        lambda: kafka_group.partition_bounds(SETTINGS, "t"),
    ),
    "offsets tool: live members": (
        "AdminClient",
        lambda: kafka_group.active_members(SETTINGS, "g"),
    ),
    "demo naive consumer": ("Consumer", _run_naive),
    "demo watcher": ("Consumer", lambda: Watch(SETTINGS, conn=None)),
}


@pytest.mark.usefixtures("marked")
@pytest.mark.parametrize("name", list(CLIENTS))
def test_every_client_starts_from_the_connection_config(name: str) -> None:
    kind, create = CLIENTS[name]
    with pytest.raises(_BuiltError) as built:
        create()
    assert built.value.kind == kind
    config = built.value.config
    assert config["bootstrap.servers"] == "127.0.0.1:1"
    assert config["client.rack"] == MARKER["client.rack"]


def test_the_connection_config_turns_settings_into_librdkafka_keys() -> None:
    config = connection_config(Settings(kafka_bootstrap_servers="a:1,b:2"))
    assert config["bootstrap.servers"] == "a:1,b:2"
    assert set(config) == {"bootstrap.servers", "logger"}


def test_client_configs_keep_the_connection_keys_and_their_own() -> None:
    base = connection_config(SETTINGS)
    producer = producer_config(SETTINGS, {"linger.ms": 5})
    consumer = consumer_config(SETTINGS, "g", {"session.timeout.ms": 6000})
    admin = admin_config(SETTINGS)
    for config in (producer, consumer, admin):
        assert config["bootstrap.servers"] == base["bootstrap.servers"]
    assert producer["enable.idempotence"] == "true"
    assert producer["acks"] == "all"
    assert producer["linger.ms"] == 5
    assert consumer["group.id"] == "g"
    assert consumer["enable.auto.commit"] == "false"
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["session.timeout.ms"] == 6000


@pytest.mark.parametrize(
    "create",
    [
        lambda: producer_config(SETTINGS, {"acks": 1}),
        lambda: KafkaProducer.create(SETTINGS, {"enable.idempotence": False}),
        lambda: consumer_config(SETTINGS, "g", {"enable.auto.commit": True}),
        lambda: KafkaConsumer.create(SETTINGS, "g", {"isolation.level": "read_uncommitted"}),
        lambda: KafkaConsumer.create(SETTINGS, "g", {"enable.auto.offset.store": True}),
    ],
)
def test_the_wrappers_keep_the_guard_against_weakened_settings(
    create: Callable[[], object],
) -> None:
    with pytest.raises(ConfigError, match="refused"):
        create()


@pytest.mark.usefixtures("marked")
def test_only_the_demo_consumer_that_says_so_commits_on_a_timer() -> None:
    with pytest.raises(_BuiltError) as built:
        _run_naive()
    config = built.value.config
    assert config["group.id"] == "naive-group"
    assert config["enable.auto.commit"] is True
    assert config["auto.commit.interval.ms"] == 5000


_CONNECTION_KEYS = {"bootstrap.servers", "group.id"}
_PACKAGES = ("oncepipe", "consumers", "producers", "schemas", "cli", "demo")


def test_no_module_but_oncepipe_kafka_writes_connection_keys() -> None:
    offenders = []
    for package in _PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "oncepipe" / "kafka.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in _CONNECTION_KEYS:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not offenders, "librdkafka connection keys outside oncepipe/kafka.py: " + ", ".join(
        offenders
    )
