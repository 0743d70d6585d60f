"""Starting Kafka tries again when a node died because a port was taken at bind time.

The local services' ports sit in Linux's ephemeral range, so an outgoing connection can take
one between the free-port check and the JVM's bind; any other start failure is raised at once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra.kafka.broker import Kafka
from infra.kafka.node import KafkaNode
from infra.paths import layout
from infra.process import ServiceError


def _kafka(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, clash: bool) -> list[int]:
    kafka = Kafka(replace(layout(), state_dir=tmp_path, kafka_brokers=1))
    launches: list[int] = []

    def launch(targets: list[KafkaNode], timeout: float) -> None:
        launches.append(len(targets))
        if len(launches) == 1:
            raise ServiceError("kafka node 1 exited with code 1 while starting")

    for name in ("_refuse_other_mode_running", "_refuse_other_ports", "_prepare"):
        monkeypatch.setattr(kafka, name, lambda: None)
    monkeypatch.setattr(kafka, "_launch", launch)
    monkeypatch.setattr(KafkaNode, "running", lambda self: False)
    monkeypatch.setattr(KafkaNode, "bind_failed", lambda self: clash)
    monkeypatch.setattr("infra.kafka.broker.time.sleep", lambda seconds: None)
    assert kafka.start() is True
    return launches


def test_a_port_taken_at_bind_time_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _kafka(tmp_path, monkeypatch, clash=True) == [1, 1]


def test_any_other_start_failure_is_raised_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ServiceError, match="exited with code 1"):
        _kafka(tmp_path, monkeypatch, clash=False)
