"""The raw confluent-kafka baselines: a producer loop over pre-encoded bytes.

Benchmarks import ``confluent_kafka`` directly here, on purpose: a baseline must not go
through oncepipe's wrappers. Only the connection keys (brokers, TLS, SASL) come from
``oncepipe.kafka.connection_config``, so a baseline runs against a secured broker too.

Public names: ``Producer``, ``raw_config``, ``raw_send``.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from bench.env import BenchEnv
from bench.events import EventSet
from oncepipe.kafka import connection_config
from producers.settings import ProducerSettings

__all__ = ["Producer", "raw_config", "raw_send"]


def raw_config(env: BenchEnv, *, idempotent: bool) -> dict[str, Any]:
    """confluent-kafka settings: oncepipe's tuning, idempotent+acks=all or neither."""
    config: dict[str, Any] = {
        **connection_config(env.settings),
        **ProducerSettings().client_config(),
    }
    if idempotent:
        config.update({"enable.idempotence": True, "acks": "all"})
    else:
        config.update({"enable.idempotence": False, "acks": "1"})
    return config


def raw_send(producer: Any, topic: str, data: EventSet) -> None:
    """Produce every pre-encoded value of ``data`` with its headers, then flush."""
    failed = 0

    def report(error: Any, _message: Any) -> None:
        nonlocal failed
        if error is not None:
            failed += 1

    produce, poll = producer.produce, producer.poll
    for n, (encoded, headers) in enumerate(zip(data.encoded, data.headers, strict=True)):
        while True:
            try:
                produce(topic, encoded.value, encoded.key, headers=headers, on_delivery=report)
                break
            except BufferError:
                poll(0.05)
        if n % 1000 == 0:
            poll(0)
    if producer.flush(120) or failed:
        raise RuntimeError(f"raw producer: {failed} deliveries failed")
