"""SIGKILLed workers: whatever the moment, no event is lost and none is applied twice.

Invariants 1-3: every event is applied once per group; a killed batch rolls back and is read
again by the next owner, and the inbox and the offset compare-and-set absorb the redelivery.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.fixtures.workers import (
    ClickStream,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    offsets_read,
    produce_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CRASH_POINTS = ["consumer.before_handler", "consumer.after_handler", "consumer.after_commit"]


def test_sigkill_at_each_crash_point_loses_nothing_and_applies_nothing_twice(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(3000, seed=11)
    records = with_duplicates(events, 0.2, seed=11)
    produce_clicks(worker_pool.settings, worker_pool.topic, records)
    url = worker_pool.settings.database_url.get_secret_value()
    killed = []
    for point in CRASH_POINTS:
        worker = worker_pool.start(crash_points=point, batch_size="200")
        assert worker.process.wait(60) == -signal.SIGKILL, worker.text()[-2000:]
        assert f"crash point {point} reached" in worker.text()
        killed.append(worker)
    survivor = worker_pool.start(batch_size="200")
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, "the survivor to catch up")
    wait_until(survivor.logged("consumer started"), 30, "the survivor to start")
    assert survivor.terminate() == 0
    assert_exact(url, worker_pool.group, records)

    # The batches killed before COMMIT were read again by the next owner: real redeliveries.
    reads = offsets_read(worker_pool.lines())
    for worker in killed[:2]:
        (last_read,) = [line for line in worker.lines() if line.get("event") == "batch read"][-1:]
        _topic, partition, first, last = last_read["ranges"][0]
        assert all(reads[(partition, o)] >= 2 for o in range(first, last + 1))
    # Killed after COMMIT but before the Kafka commit: offsets come from PostgreSQL, so the
    # survivor does not read that committed batch again.
    committed = [x for x in killed[2].lines() if x.get("event") == "batch committed"]
    _topic, partition, start, end = committed[-1]["ranges"][0]
    survivor_reads = offsets_read(survivor.lines())
    assert not any(survivor_reads[(partition, o)] for o in range(start or 0, end))


def test_sigkill_at_seeded_random_moments_loses_nothing_and_applies_nothing_twice(
    worker_pool: WorkerPool,
) -> None:
    seed = int(os.environ.get("ONCEPIPE_TEST_SEED", time.time_ns() % 2**32))
    print(f"random kill seed: {seed} (rerun with ONCEPIPE_TEST_SEED={seed})")
    rng = random.Random(seed)
    events = make_clicks(6000, seed=seed)
    records = with_duplicates(events, 0.2, seed=seed)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=500)
    stream.start()
    url = worker_pool.settings.database_url.get_secret_value()
    killed = []
    for _ in range(3):
        # Small batches and the backlog left by the previous (dead) member keep the worker
        # busy, so a random moment is often inside a batch transaction.
        worker = worker_pool.start(batch_size="20")
        wait_until(
            worker.logged("batch committed"),
            30,
            f"a committed batch before the kill (seed {seed})",
        )
        time.sleep(rng.uniform(0.0, 0.5))
        worker.kill()
        killed.append(worker)
    survivor = worker_pool.start(batch_size="100")
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, f"catch-up (seed {seed})")
    # The last killed member may have applied everything already: the survivor must still be
    # running (signal handlers installed) before its SIGTERM can be a clean stop.
    wait_until(survivor.logged("consumer started"), 30, f"the survivor to start (seed {seed})")
    assert survivor.terminate() == 0
    assert_exact(url, worker_pool.group, records)

    reads = offsets_read(worker_pool.lines())
    assert len(reads) == len(records), f"seed {seed}"
    redelivered_batches = 0
    for worker in killed:
        batches = [x for x in worker.lines() if x.get("event") in {"batch read", "batch committed"}]
        if batches and batches[-1]["event"] == "batch read":
            # Killed inside a batch: all of it was read again by a later owner (rolled back), or
            # none of it (killed after COMMIT, before the log line): never part of it.
            again = [
                reads[(partition, o)] >= 2
                for _topic, partition, first, last in batches[-1]["ranges"]
                for o in range(first, last + 1)
            ]
            assert all(again) or not any(again), f"a batch half applied (seed {seed})"
            redelivered_batches += all(again)
    redelivered = sum(1 for n in reads.values() if n > 1)
    print(
        f"kills that rolled a batch back: {redelivered_batches}/3, "
        f"offsets redelivered: {redelivered}"
    )
