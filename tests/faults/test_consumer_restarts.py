"""Restarts: SIGTERM hand-overs are free (invariant 6); a PostgreSQL restart is retried."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.services import Services
from tests.fixtures.workers import (
    ClickStream,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    offsets_read,
    wait_until,
    with_duplicates,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_a_sigterm_rolling_restart_processes_no_offset_twice(worker_pool: WorkerPool) -> None:
    events = make_clicks(6000, seed=41)
    records = with_duplicates(events, 0.2, seed=41)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=500)
    url = worker_pool.settings.database_url.get_secret_value()
    running = [worker_pool.start(batch_size="50") for _ in range(2)]
    stream.start()
    for _ in range(3):
        # Replace the oldest member once every member has joined, as a deployment would: a
        # member still starting would stop without a hand-over to test.
        for member in running:
            wait_until(member.logged("partitions assigned"), 30, f"{member.name} to join")
        replacement = worker_pool.start(batch_size="50")
        old = running.pop(0)
        assert old.terminate() == 0, old.text()[-2000:]
        running.append(replacement)
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the members to catch up")
    for worker in running:
        # The last replacement may still be joining when the others have caught up.
        wait_until(worker.logged("partitions assigned"), 30, f"{worker.name} to join")
        assert worker.terminate() == 0
    assert_exact(url, worker_pool.group, records)

    reads = offsets_read(worker_pool.lines())
    assert len(reads) == len(records)
    assert max(reads.values()) == 1, "a SIGTERM hand-over made a successor re-read offsets"
    stopped = [w for w in worker_pool.workers if w.logged("consumer stopped")()]
    assert len(stopped) == len(worker_pool.workers)


def test_postgres_restarted_during_consumption_is_retried_and_counts_stay_exact(
    services: Services, worker_pool: WorkerPool
) -> None:
    _kafka, postgres = services.require_native()
    events = make_clicks(6000, seed=51)
    records = with_duplicates(events, 0.2, seed=51)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=1000)
    url = worker_pool.settings.database_url.get_secret_value()
    worker = worker_pool.start(batch_size="100")
    stream.start()
    wait_until(worker.logged("batch committed"), 30, "a first committed batch")
    time.sleep(1)
    postgres.stop()
    time.sleep(3)  # down long enough for several reconnect attempts with backoff
    postgres.start()
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, "catch-up after the restart")
    assert worker.terminate() == 0, worker.text()[-2000:]
    assert_exact(url, worker_pool.group, records)
    retries = [line for line in worker.lines() if line.get("event") == "waiting before retry"]
    assert len(retries) >= 2, "the outage went unnoticed"
