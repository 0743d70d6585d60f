"""A member stalled past session.timeout.ms comes back as a zombie: the offset fence refuses it.

Invariant 4: the stalled worker resumes with a batch it read before it lost its partitions; a
new owner has committed those offsets meanwhile, so its compare-and-set fails, the batch rolls
back, and it rejoins the group. Counters stay exact.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_a_worker_stalled_past_the_session_timeout_is_fenced_when_it_resumes(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(4000, seed=21)
    records = with_duplicates(events, 0.2, seed=21)
    first, rest = records[:3000], records[3000:]
    produce_clicks(worker_pool.settings, worker_pool.topic, first)
    url = worker_pool.settings.database_url.get_secret_value()

    # SIGSTOP between reading a batch and opening its transaction, holding no locks.
    zombie = worker_pool.start(stall_points="consumer.before_transaction")
    wait_until(zombie.stopped, 30, "the worker to stop itself")
    owner = worker_pool.start()
    # The broker evicts the silent member after session.timeout.ms; the new owner catches up.
    wait_until(caught_up(url, worker_pool.group, len(first)), 60, "the new owner to catch up")

    zombie.signal(signal.SIGCONT)
    wait_until(zombie.logged("batch fenced"), 30, "the zombie's batch to be refused")
    produce_clicks(worker_pool.settings, worker_pool.topic, rest)
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "both members to catch up")
    time.sleep(1)  # let a late, refused batch show up in the logs if there were one
    assert zombie.terminate() == 0, zombie.text()[-2000:]
    assert owner.terminate() == 0, owner.text()[-2000:]
    assert_exact(url, worker_pool.group, records)

    fenced = [line for line in zombie.lines() if line.get("event") == "batch fenced"]
    assert len(fenced) >= 1
    assert "another consumer moved them" in fenced[0]["reason"]
    # It went on as a member after the refusal: it lost its partitions and got some back.
    events_after = [line.get("event") for line in zombie.lines()]
    assert "partitions lost" in events_after or "partitions revoked" in events_after
