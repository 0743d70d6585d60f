"""Outages are not poison: PostgreSQL or the broker down for 20 s dead-letters nothing extra.

Invariant 7, second half: transient failures are retried with backoff and never dead-letter a
record; after recovery the counters are exact and the dead letters are exactly the poison.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.fixtures.poison import (
    Produced,
    assert_applied_exactly,
    dead_letters,
    one_per_source,
    outbox_dead_letters,
    produce_records,
)
from tests.fixtures.relay import RelayThread
from tests.fixtures.services import Services
from tests.fixtures.workers import WorkerPool, caught_up, wait_until
from tests.integration.test_poison import POISON_ENV, mixed

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTAGE_S = 20


class Stream(threading.Thread):
    """Produces records at ``rate`` per second in the background; ``landed`` has coordinates."""

    def __init__(self, pool: WorkerPool, records: list[Produced], rate: float) -> None:
        super().__init__(daemon=True)
        self.args_ = (pool, records, rate)
        self.landed: list[Produced] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        pool, records, rate = self.args_
        try:
            self.landed = produce_records(pool.settings, pool.topic, records, rate=rate)
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
            self.error = exc

    def finish(self) -> list[Produced]:
        self.join(180)
        assert not self.is_alive(), "the stream did not finish"
        if self.error is not None:
            raise self.error
        return self.landed


def run_through_outage(
    pool: WorkerPool, relay_thread: Callable[..., RelayThread], outage: Callable[[], None]
) -> tuple[list[Produced], list[str]]:
    records = mixed(41, 3000, 3)
    relay_thread()
    worker = pool.start(handler="tests.fixtures.handlers:poison_clicks", **POISON_ENV)
    stream = Stream(pool, records, rate=300)
    stream.start()
    wait_until(worker.logged("batch committed"), 30, "a first committed batch")
    outage()
    landed = stream.finish()
    url = pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, pool.group, len(landed)), 120, "catch-up after the outage")
    assert worker.terminate() == 0, worker.text()[-3000:]
    retries = [line for line in worker.lines() if line.get("event") == "waiting before retry"]
    return landed, [str(line.get("reason")) for line in retries]


def assert_only_poison_dead_lettered(pool: WorkerPool, dlq_topic: str, landed: list[Produced]):
    poison = {(r.partition, r.offset) for r in landed if r.kind != "good"}
    good = [r.event for r in landed if r.kind == "good" and r.event is not None]
    assert_applied_exactly(pool, good, len(landed))
    expected_ids = sorted(f"{pool.topic}:{p}:{o}:{pool.group}" for p, o in poison)
    assert sorted(outbox_dead_letters(pool.settings, dlq_topic)) == expected_ids
    # An outage may make the relay re-send a dead letter it could not mark as published.
    letters = one_per_source(dead_letters(pool.settings, dlq_topic, expected=len(poison)))
    assert sorted((d.source_partition, d.source_offset) for d in letters) == sorted(poison)
    assert all(d.attempts == 1 for d in letters)


def test_postgres_down_for_20s_dead_letters_nothing_and_counts_stay_exact(
    services: Services,
    worker_pool: WorkerPool,
    dlq_topic: str,
    relay_thread: Callable[..., RelayThread],
) -> None:
    _kafka, postgres = services.require_native()

    def outage() -> None:
        postgres.stop()
        time.sleep(OUTAGE_S)
        postgres.start()

    landed, retries = run_through_outage(worker_pool, relay_thread, outage)
    assert len(retries) >= 3, "the outage went unnoticed"
    assert_only_poison_dead_lettered(worker_pool, dlq_topic, landed)


def test_the_broker_down_for_20s_dead_letters_nothing_and_counts_stay_exact(
    services: Services,
    worker_pool: WorkerPool,
    dlq_topic: str,
    relay_thread: Callable[..., RelayThread],
) -> None:
    kafka, _postgres = services.require_native()

    def outage() -> None:
        kafka.kill()
        time.sleep(OUTAGE_S)
        kafka.start()

    landed, _retries = run_through_outage(worker_pool, relay_thread, outage)
    assert_only_poison_dead_lettered(worker_pool, dlq_topic, landed)
