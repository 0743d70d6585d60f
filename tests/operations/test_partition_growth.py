"""Partitions added to a live topic: keys move, the relay and the workers follow.

The relay hashes a key modulo the partition count, so once it sees the new count
(``ONCEPIPE_RELAY_METADATA_MAX_AGE_S``) a key's later records go to another partition than its
earlier ones. The workers get the new partitions at the rebalance after their next metadata
refresh (``ONCEPIPE_CONSUMER_METADATA_REFRESH_MS``) and start them at the log start even with
``auto_offset_reset=latest``: every record there is newer than the group (a partition new to a
group that stored offsets for others of its topic). Runs with ``latest`` to prove that.
"""

from __future__ import annotations

import json
import subprocess
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import NewPartitions  # type: ignore[attr-defined]

from oncepipe.kafka import AdminClient
from oncepipe.settings import Settings
from producers import enqueue
from schemas import ClickEvent, Codec
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import wait_drained, worker_env
from tests.fixtures.workers import (
    ONCEPIPE,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    wait_until,
)

pytestmark = pytest.mark.integration

GROWN = "topic partition count changed; keys now hash to the new count"
NEW = "partition new to the group, starting at its log start"
CONSUMER = {"auto_offset_reset": "latest", "metadata_refresh_ms": "1000"}


def _enqueue(settings: Settings, topic: str, events: list[ClickEvent]) -> None:
    codec = Codec.load()
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        for event in events:
            enqueue(conn, event, codec=codec, topic=topic)


def _grow(admin: AdminClient, topic: str, partitions: int) -> None:
    for future in admin.create_partitions([NewPartitions(topic, partitions)]).values():
        future.result(timeout=30)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_partitions_added_to_a_live_topic_are_applied_from_their_start(
    settings: Settings,
    make_topic: Callable[..., str],
    kafka_admin: AdminClient,
    tmp_path: Path,
    relay_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    topic = make_topic("grow", 2)
    url = settings.database_url.get_secret_value()
    pool = WorkerPool(settings, tmp_path, f"g-{uuid.uuid4().hex[:8]}", topic)
    events = make_clicks(300, seed=2905, users=40)
    first, second, third = events[:100], events[100:200], events[200:]
    # The group starts at the end of the (empty) log, written down before any worker runs.
    subprocess.run(
        [ONCEPIPE, "offsets", "reset", "--group", pool.group, "--topic", topic, "--to", "latest",
         "--yes"],
        env=worker_env(settings), check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    try:
        relay = relay_process(ONCEPIPE_RELAY_METADATA_MAX_AGE_S="1")
        for _ in range(2):
            pool.start(**CONSUMER)
        _enqueue(settings, topic, first)
        wait_until(caught_up(url, pool.group, 100), 90, "the first events applied")

        # The safe procedure: stop relay and workers once drained, add partitions, resume.
        relay.terminate()
        assert relay.wait(30) == 0
        for worker in pool.workers:
            assert worker.terminate() == 0
        _grow(kafka_admin, topic, 4)
        relay_process(ONCEPIPE_RELAY_METADATA_MAX_AGE_S="1")
        _enqueue(settings, topic, second)
        wait_drained(settings)  # in partitions 2 and 3 too, before any worker knows them
        for _ in range(2):
            pool.start(**CONSUMER)
        wait_until(caught_up(url, pool.group, 200), 90, "the events of the grown topic applied")

        # Growth under a running relay and running workers: both follow within their refresh.
        _grow(kafka_admin, topic, 6)
        # An idle relay reads the count when rows come, before it routes them.
        _enqueue(settings, topic, third)
        relay_log = tmp_path / "relay-1.log"
        wait_until(
            lambda: any(line.get("event") == GROWN for line in _json_lines(relay_log)),
            60,
            "the relay to see six partitions",
        )
        wait_until(caught_up(url, pool.group, 300), 90, "the events after the live growth")
    finally:
        pool.reap()

    [grown] = [line for line in _json_lines(relay_log) if line.get("event") == GROWN]
    assert (grown["partitions_before"], grown["partitions_after"]) == (4, 6)
    started = {(line["partition"]) for line in pool.lines() if line.get("event") == NEW}
    assert {2, 3} <= started
    totals = assert_exact(url, pool.group, events)
    assert set(totals.stored_offsets) <= set(range(6))
    # Keys moved: the partition of each record is its key's CRC-32 modulo the count then.
    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=300)
    by_key: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        assert record.key is not None
        by_key[record.key].add(record.partition)
        assert record.partition in {zlib.crc32(record.key) % n for n in (2, 4, 6)}
    assert any(len(partitions) > 1 for partitions in by_key.values())
    assert {r.partition for r in records} == set(range(6))
