"""A worker asked to stop exits even when the group coordinator never answers its goodbye.

Leaving the group (``close()``) waits for the coordinator. A coordinator that does not answer
(here the broker is frozen with SIGSTOP; in a long chaos run, a client whose coordinator
connection never came back after a broker restart) must not keep the process alive past its
stop: offsets live in PostgreSQL, so an unclean leave costs the group a rebalance after the
session timeout, never data.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.fixtures.services import Services
from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
)

pytestmark = [pytest.mark.faults]


def test_a_worker_stops_within_its_close_bound_when_the_coordinator_never_answers(
    worker_pool: WorkerPool, services: Services
) -> None:
    kafka, _ = services.require_native()
    records = make_clicks(200, seed=73)
    produce_clicks(worker_pool.settings, worker_pool.topic, records)
    # librdkafka gives up on the LeaveGroup request after 5 s: a 1 s bound must cut it short.
    worker = worker_pool.start(close_timeout_s="1")
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 120, "the worker to catch up")
    broker = kafka.pid()
    assert broker is not None, "the native broker is not running"
    os.kill(broker, signal.SIGSTOP)
    try:
        code = worker.terminate(timeout=60)
    finally:
        os.kill(broker, signal.SIGCONT)
    assert code == 0, worker.text()[-3000:]
    unclean = [
        line
        for line in worker.lines()
        if line.get("event") == "left the group without a clean close"
    ]
    assert len(unclean) == 1, worker.text()[-3000:]
    assert "ONCEPIPE_CONSUMER_CLOSE_TIMEOUT_S" in unclean[0]["reason"]
    assert worker.logged("consumer stopped")()
    assert_exact(url, worker_pool.group, records)
