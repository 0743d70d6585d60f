"""A static member (``ONCEPIPE_CONSUMER_INSTANCE_ID``) SIGKILLed and restarted in place.

Classic protocol, static membership: the broker hands the restarted worker the dead one's
partitions at once, without waiting for the session to expire and without a rebalance. The
session timeout here is five minutes, far beyond the catch-up wait: a worker that rejoined as a
new member would wait for it and fail the test. The inbox and the stored offsets keep the
killed batch from being applied twice.
"""

from __future__ import annotations

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

STATIC = {"instance_id": "slot-a", "session_timeout_ms": "300000", "batch_size": "50"}


def test_a_static_member_restarted_in_place_takes_its_partitions_back_and_applies_nothing_twice(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(4000, seed=25)
    records = with_duplicates(events, 0.2, seed=25)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=500)
    stream.start()
    url = worker_pool.settings.database_url.get_secret_value()
    first = worker_pool.start(**STATIC)
    wait_until(first.logged("batch committed"), 60, "a committed batch before the kill")
    first.kill()
    again = worker_pool.start(**STATIC)
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 120, "the restarted worker")
    wait_until(again.logged("consumer started"), 30, "the restarted worker to start")
    assert again.terminate() == 0
    assert_exact(url, worker_pool.group, records)
    # It took back every partition the dead member held: none stayed with the dead one.
    assigned = [line for line in again.lines() if line.get("event") == "partitions assigned"]
    assert len({name for line in assigned for name in line["partitions"]}) == 6
    assert len(offsets_read(worker_pool.lines())) == len(records)


def test_of_two_live_workers_given_one_instance_id_the_fenced_one_exits_instead_of_idling(
    worker_pool: WorkerPool,
) -> None:
    produce_clicks(worker_pool.settings, worker_pool.topic, make_clicks(200, seed=26))
    # A short session: the older worker hears of its fencing at its next heartbeat (a third).
    first = worker_pool.start(instance_id="slot-a", session_timeout_ms="6000")
    wait_until(first.logged("batch committed"), 60, "the first worker to apply a batch")
    second = worker_pool.start(instance_id="slot-a", session_timeout_ms="6000")
    # The broker hands the slot to the newer worker and fences the older: a client that got the
    # fatal error can never consume again, so it must exit for its supervisor to see.
    assert first.process.wait(120) not in (0, None), first.text()[-2000:]
    assert "FENCED_INSTANCE_ID" in first.text() or "_FATAL" in first.text()
    wait_until(second.logged("partitions assigned"), 60, "the newer worker's assignment")
