"""RetryLater: the event waits in its retry tiers, out of its partition's way.

Tiers of 1 s and 2 s: an event deferred twice is applied once, at least 3 s after it was
produced (from its ``produced_at`` header and the inbox's ``applied_at``, not from timers);
the events after it in its partition were applied before it; an event deferred every time is
dead-lettered after the last tier with each attempt in ``dlq.retry.attempts``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest

from tests.fixtures.kafka import read_topic
from tests.fixtures.poison import assert_applied_exactly, dead_letters, good_record, produce_records
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = [pytest.mark.faults]

TIERS = (1.0, 2.0)


def applied_at(url: str, group: str) -> dict[str, datetime]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, applied_at FROM oncepipe.inbox WHERE consumer_group = %s", (group,)
        ).fetchall()
    return {str(event_id): at for event_id, at in rows}


def test_retry_later_twice_then_success_applies_once_after_the_tiers_without_delaying_others(
    worker_pool: WorkerPool,
    dlq_topic: str,
    relay_thread: Callable[..., RelayThread],
) -> None:
    events = make_clicks(60, seed=51)
    later = events[10].model_copy(update={"item_id": "later-1"})
    never = events[30].model_copy(update={"item_id": "never-1"})
    events[10], events[30] = later, never
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in events]
    )
    relay_thread()
    worker = worker_pool.start(
        handler="tests.fixtures.crash_handlers:deferring_clicks",
        retry_tiers=",".join(str(t) for t in TIERS),
        retry_check_s="0.2",
    )
    url = worker_pool.settings.database_url.get_secret_value()
    done = caught_up(url, worker_pool.group, len(records))
    wait_until(
        lambda: done() and str(later.event_id) in applied_at(url, worker_pool.group),
        60,
        "the worker to catch up and apply the deferred event",
    )
    letters = dead_letters(worker_pool.settings, dlq_topic, expected=1)
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_applied_exactly(worker_pool, [e for e in events if e is not never], len(records))

    produced = {
        r.headers["event_id"]: datetime.fromisoformat(r.headers["produced_at"])
        for r in read_topic(
            worker_pool.settings.kafka_bootstrap_servers, worker_pool.topic,
            expected=len(records), settle=0,
        )
    }  # fmt: skip
    applied = applied_at(url, worker_pool.group)
    waited = (applied[str(later.event_id)] - produced[str(later.event_id)]).total_seconds()
    assert waited >= sum(TIERS)
    # The partition's other events, after it as before it, did not wait for it.
    where = next(r for r in records if r.event_id == str(later.event_id))
    neighbours = [r for r in records if r.partition == where.partition and r.kind == "good"]
    for record in neighbours:
        if record.event_id not in (str(later.event_id), str(never.event_id)):
            assert applied[record.event_id] < applied[str(later.event_id)]

    (letter,) = letters
    assert (letter.event_id, letter.stage) == (str(never.event_id), "handle")
    assert letter.error_class.rsplit(".", 1)[-1] == "RetryLater"
    history = json.loads(letter.extras["retry.attempts"])
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert [h["delay_s"] for h in history] == [*TIERS, None]
    assert letter.attempts == 3
    stamps = [datetime.fromisoformat(h["failed_at"]) for h in history]
    for (before, after), tier in zip(itertools.pairwise(stamps), TIERS, strict=True):
        assert (after - before).total_seconds() >= tier
