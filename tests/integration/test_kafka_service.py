"""The native Kafka follows moved ports: applied at the next start, refused while it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infra.paths import REPO_ROOT
from infra.process import port_open

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _infra(command: str, state: Path, ports: tuple[int, int]) -> subprocess.CompletedProcess[str]:
    """``python -m infra COMMAND kafka`` (what `make up` runs) on ``state`` and ``ports``."""
    env = {
        **os.environ,
        "ONCEPIPE_INFRA_STATE_DIR": str(state),
        "ONCEPIPE_INFRA_KAFKA_PORT": str(ports[0]),
        "ONCEPIPE_INFRA_KAFKA_CONTROLLER_PORT": str(ports[1]),
        "ONCEPIPE_INFRA_KAFKA_BROKERS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "infra", command, "kafka"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_moved_kafka_ports_are_applied_and_refused_while_the_old_ones_run(tmp_path: Path) -> None:
    state = tmp_path / ".state"
    old, new = (_free_port(), _free_port()), (_free_port(), _free_port())
    try:
        started = _infra("up", state, old)
        assert started.returncode == 0, started.stderr
        refused = _infra("up", state, new)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            f"error: kafka node 1 already runs on port {old[0]} (controller {old[1]}), not "
            f"{new[0]} ({new[1]}): stop it with `make down` (python -m infra down kafka), "
            "then start it on the new ports"
        ]
        assert port_open(old[0])  # untouched
        assert _infra("down", state, new).returncode == 0
        moved = _infra("up", state, new)
        assert moved.returncode == 0, moved.stderr
        assert port_open(new[0])
        assert port_open(new[1])
        assert not port_open(old[0])
    finally:
        _infra("clean", state, new)
    assert not port_open(new[0]), "a broker was left running"
