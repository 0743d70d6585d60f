"""Queue mode (``oncepipe consume --mode queue``): share-group workers, exactly-once effects.

Real broker (share groups on) and real PostgreSQL; the workers are ``oncepipe consume``
processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oncepipe.settings import Settings
from schemas import ClickEvent
from tests.fixtures.workers import (
    WorkerPool,
    expected_totals,
    make_clicks,
    produce_clicks,
    read_totals,
    wait_until,
    with_duplicates,
)


@pytest.fixture
def queue_pool(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> Iterator[WorkerPool]:
    """Queue-mode workers of a fresh share group on a fresh 2-partition topic."""
    pool = WorkerPool(settings, tmp_path, f"q-{uuid.uuid4().hex[:8]}", make_topic("clicks", 2))
    pool.extra_env.update({"ONCEPIPE_CONSUMER_MODE": "queue", "ONCEPIPE_LOG_LEVEL": "INFO"})
    try:
        yield pool
    finally:
        pool.reap()


def committed(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "batch committed"]


def assert_exact_without_offsets(url: str, group: str, records: list[ClickEvent]) -> None:
    """Counters equal the distinct counts; one raw row and one inbox row each; no offsets."""
    totals = read_totals(url, group)
    items, user_items = expected_totals(records)
    distinct = {e.event_id for e in records}
    assert len(totals.raw_ids) == len(set(totals.raw_ids)) == len(distinct)
    assert set(totals.raw_ids) == distinct
    assert totals.inbox == len(distinct)
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)
    assert totals.stored_offsets == {}  # the share partition's state is the cursor


def inbox_count(url: str, group: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = %s", (group,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_six_workers_on_two_partitions_count_20000_events_with_duplicates_exactly(
    queue_pool: WorkerPool,
) -> None:
    events = make_clicks(20_000, seed=28)
    records = with_duplicates(events, 0.2, seed=28)
    workers = [queue_pool.start() for _ in range(6)]
    for worker in workers:
        wait_until(worker.logged("queue consumer started"), 60, f"{worker.name} to start")
    # A live stream (small record batches, each acquired whole) that outlasts the group's
    # assignment of its six members.
    produce_clicks(queue_pool.settings, queue_pool.topic, records, rate=2500)
    url = queue_pool.settings.database_url.get_secret_value()
    group = queue_pool.group

    def done() -> bool:
        lines = committed(queue_pool.lines())
        return sum(line["events"] for line in lines) >= len(records)

    wait_until(done, 120, "every record to be committed")
    for worker in workers:
        assert worker.terminate() == 0, worker.text()[-3000:]
    assert_exact_without_offsets(url, group, records)
    for worker in workers:
        applied = sum(line["applied"] for line in committed(worker.lines()))
        assert applied > 0, f"{worker.name} applied nothing"
    lines = committed(queue_pool.lines())
    assert sum(line["applied"] for line in lines) == len(events)
    assert sum(line["duplicates"] for line in lines) == sum(line["events"] for line in lines) - len(
        events
    )
