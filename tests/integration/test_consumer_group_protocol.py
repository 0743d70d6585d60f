"""Workers under the KIP-848 consumer protocol (``ONCEPIPE_CONSUMER_GROUP_PROTOCOL=consumer``).

The broker assigns partitions incrementally: a second member joining takes some from the
first (revoked through the same callbacks as the cooperative classic protocol), and a member
leaving on SIGTERM hands its partitions back at once. Every event is applied exactly once.
"""

from __future__ import annotations

import pytest

from tests.fixtures.workers import (
    ClickStream,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = pytest.mark.slow


def test_consumer_protocol_members_share_and_hand_back_partitions_exactly_once(
    worker_pool: WorkerPool,
) -> None:
    worker_pool.extra_env["ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS"] = ""  # the broker owns it
    events = make_clicks(3000, seed=848)
    records = with_duplicates(events, 0.1, seed=848)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, records, rate=400)
    stream.start()
    url = worker_pool.settings.database_url.get_secret_value()
    first = worker_pool.start(group_protocol="consumer", batch_size="100")
    wait_until(first.logged("batch committed"), 60, "the first member to apply a batch")
    second = worker_pool.start(group_protocol="consumer", batch_size="100")
    wait_until(second.logged("partitions assigned"), 60, "the second member's assignment")
    wait_until(first.logged("partitions revoked"), 60, "the first member to give some up")
    assert second.terminate() == 0  # leaves the group: its partitions go back to the first
    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(records)), 120, "the first member")
    assert first.terminate() == 0
    assert_exact(url, worker_pool.group, records)
