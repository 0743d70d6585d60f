"""A record that kills the worker (``os._exit``) is caught: a ``crash`` dead letter after 2N.

N (``crash_attempts``) attempts of the batch's start offset end with the worker dead; the
range is then applied one record at a time, and the record alone that kills the worker N more
times is dead-lettered with stage ``crash``. Every other record is applied exactly once.

The killer sits in the middle of its partition and each life of the worker shapes its batches
differently (first a large batch, then one record per batch, ...): a restarted worker commits
the records before the killer in batches of their own, so the attempts that died never start
at the same offset again. Counting by overlapping ranges still catches the killer after
exactly 2N deaths (counting by exact start offset started again and needed 7 for N = 3).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.poison import assert_applied_exactly, dead_letters, good_record, produce_records
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = [pytest.mark.faults]

N = 3


def test_a_record_that_kills_the_worker_becomes_one_crash_dead_letter_after_2n_restarts(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    events = make_clicks(120, seed=41)
    killer = events[60].model_copy(update={"item_id": "killer-1"})
    # The killer is in the middle of its partition (records of every partition before it).
    records = produce_records(
        worker_pool.settings,
        worker_pool.topic,
        [good_record(e) for e in events[:60]] + [good_record(killer)]
        + [good_record(e) for e in events[61:]],
    )  # fmt: skip
    before = [r for r in records[:60] if r.partition == records[60].partition]
    assert before, "the killer should not be the first record of its partition"
    relay_thread()
    url = worker_pool.settings.database_url.get_secret_value()
    handler = "tests.fixtures.crash_handlers:killer_clicks"
    # One batch size per life of the worker: the batches holding the killer start elsewhere.
    shapes = ["500", "1", "2", "1", "3", "1", "50"]
    restarts = 0
    while True:
        worker = worker_pool.start(
            handler=handler, crash_attempts=str(N), batch_size=shapes[restarts % len(shapes)]
        )
        done = caught_up(url, worker_pool.group, len(records))
        wait_until(lambda: not worker.alive() or done(), 90, "the worker to die or catch up")  # noqa: B023
        if worker.alive():
            break
        assert worker.process.returncode == 1, worker.text()[-2000:]
        restarts += 1
        assert restarts <= 2 * N, "the crash loop was not caught"
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert restarts == 2 * N
    good = [e for e in events if e.event_id != killer.event_id]
    assert_applied_exactly(worker_pool, good, len(records))
    letters = dead_letters(worker_pool.settings, dlq_topic, expected=1)
    assert [(d.stage, d.event_id, d.error_class.rsplit(".", 1)[-1]) for d in letters] == [
        ("crash", str(killer.event_id), "CrashLoopError")
    ]
