"""A consumer asked to stop while PostgreSQL is still unreachable exits 0: it joined no group
and held no batch, so there was nothing to commit or roll back (DESIGN §2, invariant 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.fixtures.relay import ONCEPIPE

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"


def test_sigterm_while_waiting_for_postgresql_exits_0() -> None:
    env = {
        **os.environ,
        "ONCEPIPE_DATABASE_URL": UNREACHABLE,
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "ONCEPIPE_LOG_FORMAT": "json",
    }
    worker = subprocess.Popen(
        [ONCEPIPE, "consume", "--group", "g", "--topic", "t", "--handler", "clicks"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    try:
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = worker.stderr.readline()
            seen.append(line)
            if "waiting before retry" in line:
                break
        else:
            raise AssertionError("no retry logged:\n" + "".join(seen))
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, rest
    assert "stopped before starting" in rest
