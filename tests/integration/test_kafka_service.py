"""The native Kafka follows moved ports: applied at the next start, refused while it runs."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from infra import Kafka, ServiceError
from infra.paths import layout
from infra.process import port_open

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kafka(state: Path, ports: tuple[int, int]) -> Kafka:
    """The service `make up` would start with ``ONCEPIPE_INFRA_KAFKA_*PORT`` set to ``ports``."""
    where = replace(
        layout(), state_dir=state, kafka_port=ports[0], kafka_controller_port=ports[1],
        kafka_brokers=1,
    )  # fmt: skip
    return Kafka(where)


def test_moved_kafka_ports_are_applied_and_refused_while_the_old_ones_run(tmp_path: Path) -> None:
    old, new = (_free_port(), _free_port()), (_free_port(), _free_port())
    before, after = _kafka(tmp_path, old), _kafka(tmp_path, new)
    try:
        assert before.start(timeout=180)
        with pytest.raises(ServiceError) as refused:
            after.start(timeout=180)
        assert str(refused.value) == (
            f"kafka node 1 already runs on port {old[0]} (controller {old[1]}), not "
            f"{new[0]} ({new[1]}): stop it with `make down` (python -m infra down kafka), "
            "then start it on the new ports"
        )
        assert port_open(old[0])  # untouched
        before.kill()  # quicker than a controlled shutdown; the same data is started again
        assert after.start(timeout=180)
        assert port_open(new[0])
        assert port_open(new[1])
        assert not port_open(old[0])
    finally:
        after.kill()
    assert not port_open(new[0]), "a broker was left running"
