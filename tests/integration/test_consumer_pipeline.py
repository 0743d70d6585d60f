"""A consumer worker applies every event exactly once per group, whatever the duplicates."""

from __future__ import annotations

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

pytestmark = pytest.mark.integration


def test_ten_thousand_events_with_20_percent_duplicate_records_count_exactly(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(10_000, seed=5)
    records = with_duplicates(events, 0.2, seed=5)
    produce_clicks(worker_pool.settings, worker_pool.topic, records)
    worker = worker_pool.start()
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the worker to catch up")
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_exact(url, worker_pool.group, records)
    committed = [line for line in worker.lines() if line.get("event") == "batch committed"]
    assert sum(line["duplicates"] for line in committed) == len(records) - len(events)
