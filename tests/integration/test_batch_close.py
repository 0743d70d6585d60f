"""A consumer batch closes with the records that arrived, not when its timeout runs out.

Below the throughput a worker keeps up with, waiting to fill a batch only adds latency: with a
batch of 500 and a 60 s timeout, three records must be applied long before those 60 s.
"""

from __future__ import annotations

import threading

import pytest

from consumers.registry import resolve
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import BatchCommitted, NoHooks
from schemas import Codec
from tests.fixtures.poison import good_record, produce_records
from tests.fixtures.workers import WorkerPool, make_clicks

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0  # the longest batch timeout: the old wait-to-fill would hold the batch this long


class Applied(NoHooks):
    """Sets ``done`` once the committed batches hold ``wanted`` events."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.events = 0
        self.batches: list[int] = []
        self.done = threading.Event()

    def batch_committed(self, batch: BatchCommitted) -> None:
        self.batches.append(batch.events)
        self.events += batch.events
        if self.events >= self.wanted:
            self.done.set()


def test_a_batch_goes_with_what_arrived_instead_of_waiting_to_fill(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(3, seed=26)
    produce_records(worker_pool.settings, worker_pool.topic, [good_record(e) for e in events])
    config = ConsumerSettings(
        group=worker_pool.group, topics=(worker_pool.topic,), handler="clicks",
        batch_size=500, batch_timeout_s=TIMEOUT_S, session_timeout_ms=6000,
    )  # fmt: skip
    hooks = Applied(len(events))
    runtime = ConsumerRuntime(
        worker_pool.settings, config, decoder=Codec.load(), handler=resolve("clicks"), hooks=hooks
    )
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        # Well within the batch timeout: a batch that waited to fill would still be waiting.
        assert hooks.done.wait(TIMEOUT_S * 0.75), f"batches so far: {hooks.batches}"
    finally:
        runtime.stop()
        # The idle worker waits for a batch's first record: one more record wakes it to stop.
        late = make_clicks(1, seed=27)
        produce_records(worker_pool.settings, worker_pool.topic, [good_record(e) for e in late])
        thread.join(TIMEOUT_S + 30)
    assert not thread.is_alive(), "the runtime did not stop"
    assert sum(hooks.batches) >= len(events)
