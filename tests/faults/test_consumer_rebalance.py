"""Members join and leave while events stream in (1 -> 3 -> 1): counters stay exact.

The handler takes 100 ms a batch, so rebalances land while batches are open: a revoke is only
handled between batches, so the batch in flight commits while the worker still owns its
partitions, and records of partitions revoked during a consume() are dropped unapplied for the
next owner to read.
"""

from __future__ import annotations

import time

import pytest

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

SLOW = "tests.fixtures.workers:slow_clicks"


def test_scaling_one_to_three_to_one_member_keeps_counters_exact(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(8000, seed=31)
    records = with_duplicates(events, 0.2, seed=31)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=800)
    url = worker_pool.settings.database_url.get_secret_value()
    first = worker_pool.start(batch_size="200", handler=SLOW)
    stream.start()
    wait_until(first.logged("batch committed"), 30, "the first member to commit")
    time.sleep(2)
    joined = [worker_pool.start(batch_size="200", handler=SLOW) for _ in range(2)]
    for worker in joined:
        wait_until(worker.logged("partitions assigned"), 30, "a new member to get partitions")
    time.sleep(2)
    for worker in joined:
        assert worker.terminate() == 0, worker.text()[-2000:]
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the last member to catch up")
    assert first.terminate() == 0
    assert_exact(url, worker_pool.group, records)

    lines = first.lines()
    assert any(line.get("event") == "partitions revoked" for line in lines)
    assert sum(1 for line in lines if line.get("event") == "partitions assigned") >= 2
    # Clean hand-overs: no record was read twice, no batch was fenced.
    assert max(offsets_read(worker_pool.lines()).values()) == 1
    assert not any(line.get("event") == "batch fenced" for line in worker_pool.lines())
