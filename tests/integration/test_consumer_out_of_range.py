"""A stored offset outside the log is never skipped silently (DESIGN invariant 1).

A topic deleted and created again leaves the stored offset beyond the new log end; retention
(here ``delete_records``) moves the log start past it. The worker sees both on assignment,
logs the numbers, and holds the partition until ``oncepipe offsets reset`` (default), or resets
it to the log start with a warning when ``ONCEPIPE_CONSUMER_OFFSET_OUT_OF_RANGE=reset``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oncepipe.kafka import AdminClient, TopicPartition, create_topics
from oncepipe.settings import Settings
from tests.fixtures.workers import (
    ONCEPIPE,
    Worker,
    WorkerPool,
    caught_up,
    expected_totals,
    make_clicks,
    produce_clicks,
    read_totals,
    wait_until,
)

pytestmark = pytest.mark.integration

HELD = "stored offset out of range, partition held"


@pytest.fixture
def one_partition_pool(settings: Settings, make_topic: Callable[..., str], tmp_path: Path) -> Any:
    """Workers of a fresh group on a fresh single-partition topic; killed afterwards."""
    pool = WorkerPool(settings, tmp_path, f"g-{uuid.uuid4().hex[:8]}", make_topic("range", 1))
    try:
        yield pool
    finally:
        pool.reap()


def _stored(url: str, group: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT next_offset FROM oncepipe.consumer_offsets WHERE consumer_group = %s",
            (group,),
        ).fetchone()
    return None if row is None else int(row[0])


def _recreate(admin: AdminClient, topic: str) -> None:
    """Delete ``topic`` and create it again, empty, with one partition."""
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result(timeout=60)
    deadline = time.monotonic() + 60
    while topic not in create_topics(admin, {topic: 1}):
        assert time.monotonic() < deadline, f"{topic} could not be created again"
        time.sleep(0.5)


def _lines(worker: Worker, event: str) -> list[dict[str, Any]]:
    return [line for line in worker.lines() if line.get("event") == event]


def test_a_recreated_topic_holds_the_partition_until_an_offsets_reset(
    one_partition_pool: WorkerPool, kafka_admin: AdminClient
) -> None:
    pool = one_partition_pool
    url = pool.settings.database_url.get_secret_value()
    old, new = make_clicks(50, seed=81), make_clicks(100, seed=82)[80:]
    first = pool.start()
    produce_clicks(pool.settings, pool.topic, old)
    wait_until(caught_up(url, pool.group, 50), 90, "the old topic applied")
    assert first.terminate() == 0

    _recreate(kafka_admin, pool.topic)
    produce_clicks(pool.settings, pool.topic, new)
    worker = pool.start(out_of_range_recheck_s="0.5")
    # Held, and logged again at every check: the records of the new topic wait.
    wait_until(lambda: len(_lines(worker, HELD)) >= 2, 90, "the partition held, twice")
    held = _lines(worker, HELD)[0]
    assert (held["stored_offset"], held["log_start"], held["log_end"]) == (50, 0, 20)
    assert held["partition"] == 0
    assert held["topic"] == pool.topic
    assert _stored(url, pool.group) == 50
    # Nothing applied while held (an idle worker's check for due retries commits empty batches).
    assert not [b for b in _lines(worker, "batch committed") if b["ranges"] or b["events"]]

    reset = subprocess.run(
        [ONCEPIPE, "offsets", "reset", "--group", pool.group, "--topic", pool.topic,
         "--to", "earliest", "--yes", "--force"],
        env={**os.environ, "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS":
             pool.settings.kafka_bootstrap_servers, "ONCEPIPE_DATABASE_URL": url},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    wait_until(lambda: _stored(url, pool.group) == 20, 90, "the new topic applied")
    assert _lines(worker, "partition back in range, resumed")
    assert_exact_union(url, pool.group, old + new)
    assert worker.terminate() == 0


def assert_exact_union(url: str, group: str, events: list[Any]) -> None:
    """Every event applied once (the stored offset is not a count of them here)."""
    totals = read_totals(url, group)
    items, user_items = expected_totals(events)
    distinct = {e.event_id for e in events}
    assert sorted(totals.raw_ids) == sorted(distinct)
    assert totals.inbox == len(distinct)
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)


def test_retention_past_the_stored_offset_resets_with_a_warning_when_configured(
    one_partition_pool: WorkerPool, kafka_admin: AdminClient
) -> None:
    pool = one_partition_pool
    url = pool.settings.database_url.get_secret_value()
    clicks = make_clicks(60, seed=83)
    first = pool.start()
    produce_clicks(pool.settings, pool.topic, clicks[:30])
    wait_until(caught_up(url, pool.group, 30), 90, "the first clicks applied")
    assert first.terminate() == 0
    produce_clicks(pool.settings, pool.topic, clicks[30:])
    deleted = kafka_admin.delete_records([TopicPartition(pool.topic, 0, 40)])
    for future in deleted.values():
        future.result(timeout=30)

    worker = pool.start(offset_out_of_range="reset")
    wait_until(lambda: _stored(url, pool.group) == 60, 90, "the rest applied")
    [warned] = _lines(worker, "stored offset out of range, reset to the log start")
    assert (warned["stored_offset"], warned["log_start"], warned["skipped"]) == (30, 40, 10)
    assert_exact_union(url, pool.group, clicks[:30] + clicks[40:])
    assert worker.terminate() == 0


def test_retention_past_the_stored_offset_holds_by_default(
    one_partition_pool: WorkerPool, kafka_admin: AdminClient
) -> None:
    pool = one_partition_pool
    url = pool.settings.database_url.get_secret_value()
    clicks = make_clicks(60, seed=84)
    first = pool.start()
    produce_clicks(pool.settings, pool.topic, clicks[:30])
    wait_until(caught_up(url, pool.group, 30), 90, "the first clicks applied")
    assert first.terminate() == 0
    produce_clicks(pool.settings, pool.topic, clicks[30:])
    for future in kafka_admin.delete_records([TopicPartition(pool.topic, 0, 40)]).values():
        future.result(timeout=30)

    worker = pool.start()
    wait_until(lambda: bool(_lines(worker, HELD)), 90, "the partition held")
    held = _lines(worker, HELD)[0]
    assert (held["stored_offset"], held["log_start"], held["log_end"]) == (30, 40, 60)
    assert "below the log start 40" in held["reason"]
    assert _stored(url, pool.group) == 30
    assert worker.terminate() == 0


def test_retention_overtaking_a_running_worker_holds_its_partition(
    one_partition_pool: WorkerPool, kafka_admin: AdminClient
) -> None:
    pool = one_partition_pool
    url = pool.settings.database_url.get_secret_value()
    clicks = make_clicks(60, seed=85)
    clicks[30] = clicks[30].model_copy(update={"item_id": "doomed-1"})
    # The worker stays stuck at offset 30 (its handler always fails there) while retention
    # deletes records beyond it: its next retry finds its position gone.
    worker = pool.start(handler="tests.fixtures.handlers:doomed_clicks", max_attempts="1000")
    produce_clicks(pool.settings, pool.topic, clicks[:30])
    wait_until(caught_up(url, pool.group, 30), 90, "the first clicks applied")
    produce_clicks(pool.settings, pool.topic, clicks[30:])
    wait_until(
        lambda: any(line.get("offset") == 30 for line in _lines(worker, "partition held")),
        90,
        "the partition held at the failing record",
    )
    for future in kafka_admin.delete_records([TopicPartition(pool.topic, 0, 40)]).values():
        future.result(timeout=30)

    wait_until(lambda: bool(_lines(worker, HELD)), 90, "the partition held out of range")
    held = _lines(worker, HELD)[0]
    assert (held["stored_offset"], held["log_start"], held["log_end"]) == (30, 40, 60)
    assert len(_lines(worker, "partitions assigned")) == 1  # seen while running, not on assign
    assert _stored(url, pool.group) == 30
    assert worker.terminate() == 0
