"""SIGKILLed workers around dead letters: still exactly one per poison record, nothing lost.

Invariants 1 and 7: a dead letter commits with the offset move or not at all (the outbox row
is unique per source coordinates), and failure counts are durable, so a record failing on
every attempt is dead-lettered after ``max_attempts`` even when workers die in between.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest

from tests.fixtures.poison import (
    Produced,
    assert_applied_exactly,
    dead_letters,
    good_record,
    produce_records,
)
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until
from tests.integration.test_poison import POISON_ENV, mixed

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_sigkill_after_dead_lettering_before_commit_leaves_one_dead_letter_per_poison(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    records = produce_records(worker_pool.settings, worker_pool.topic, mixed(21, 1500, 4))
    poison = {(r.partition, r.offset) for r in records if r.kind != "good"}
    good = [r.event for r in records if r.kind == "good" and r.event is not None]
    relay_thread()
    handler = "tests.fixtures.handlers:poison_clicks"
    for _ in range(2):
        killed = worker_pool.start(
            handler=handler, crash_points="consumer.after_dead_letter", **POISON_ENV
        )
        assert killed.process.wait(60) == -signal.SIGKILL, killed.text()[-2000:]
        assert "crash point consumer.after_dead_letter reached" in killed.text()
    survivor = worker_pool.start(handler=handler, **POISON_ENV)
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, "the survivor to catch up")
    assert survivor.terminate() == 0, survivor.text()[-3000:]
    assert_applied_exactly(worker_pool, good, len(records))

    letters = dead_letters(worker_pool.settings, dlq_topic, expected=len(poison))
    by_source = Counter((d.source_partition, d.source_offset) for d in letters)
    assert set(by_source) == poison
    assert max(by_source.values()) == 1, "a dead letter was published twice"


def test_a_record_failing_on_every_attempt_is_dead_lettered_after_three_across_restarts(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    events = make_clicks(200, seed=31)
    doomed = events[100].model_copy(update={"item_id": "doomed-1"})
    clicks = [*events[:100], doomed, *events[101:]]
    records: list[Produced] = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in clicks]
    )
    (target,) = [r for r in records if r.event == doomed]
    relay_thread()
    handler = "tests.fixtures.handlers:doomed_clicks"
    for _ in range(2):
        killed = worker_pool.start(
            handler=handler, crash_points="consumer.after_failure_counted", max_attempts="3"
        )
        assert killed.process.wait(60) == -signal.SIGKILL, killed.text()[-2000:]
    url = worker_pool.settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT attempts FROM oncepipe.consumer_failures WHERE consumer_group = %s",
            (worker_pool.group,),
        ).fetchone()
    assert row == (2,), "each killed worker's attempt was counted"

    survivor = worker_pool.start(handler=handler, max_attempts="3")
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the survivor to catch up")
    assert survivor.terminate() == 0, survivor.text()[-3000:]
    assert_applied_exactly(worker_pool, [e for e in clicks if e != doomed], len(records))
    (letter,) = dead_letters(worker_pool.settings, dlq_topic, expected=1)
    assert (letter.source_partition, letter.source_offset) == (target.partition, target.offset)
    assert letter.stage == "handle"
    assert letter.error_class == "RuntimeError"
    assert letter.attempts == 3
    assert letter.first_failure is not None
    assert letter.last_failure is not None
    assert letter.first_failure < letter.last_failure
    assert letter.value == target.value
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM oncepipe.consumer_failures").fetchone()
    assert left == (0,), "the batch that dead-lettered it forgot its failure count"
