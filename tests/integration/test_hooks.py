"""Hooks passed to a consumer runtime and a relay hear what they committed and published.

One worker (in this process) reads good clicks, duplicates, poison its decoder rejects and
poison its handler refuses; its hooks must count exactly what the database shows. A relay then
publishes the dead letters and its hooks count the rows it marked published.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from consumers.registry import resolve
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import (
    BatchCommitted,
    BatchStarted,
    NoHooks,
    RecordDeadLettered,
    RowsPublished,
)
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from schemas import Codec
from tests.fixtures.poison import (
    ERRORS,
    Produced,
    assert_applied_exactly,
    good_record,
    outbox_dead_letters,
    poison_record,
    produce_records,
)
from tests.fixtures.relay import pending_rows
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration

POISON_KINDS = ("bad_magic", "truncated", "handler")  # dead-lettered at the first failure


class Recorder(NoHooks):
    """Every call, in order (the runtime calls from its own thread)."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self._lock = threading.Lock()

    def _add(self, call: object) -> None:
        with self._lock:
            self.calls.append(call)

    def point(self, name: str) -> None:
        self._add(name)

    def batch_started(self, batch: BatchStarted) -> None:
        self._add(batch)

    def batch_committed(self, batch: BatchCommitted) -> None:
        self._add(batch)

    def record_dead_lettered(self, record: RecordDeadLettered) -> None:
        self._add(record)

    def rows_published(self, rows: RowsPublished) -> None:
        self._add(rows)

    def of(self, kind: type) -> list[object]:
        with self._lock:
            return [c for c in self.calls if isinstance(c, kind)]


def _records(seed: int) -> tuple[list[Produced], int]:
    """Good clicks, 30 of them sent twice, and two records of each poison kind, shuffled."""
    rng = random.Random(seed)
    events = make_clicks(300, seed=seed)
    records = [good_record(e) for e in events]
    records += [good_record(e) for e in rng.sample(events, 30)]
    records += [poison_record(kind, rng.choice(events)) for kind in POISON_KINDS for _ in "ab"]
    rng.shuffle(records)
    return records, 30


def _run_consumer(pool: WorkerPool, hooks: Recorder, total: int) -> None:
    config = ConsumerSettings(
        group=pool.group, topics=(pool.topic,), handler="tests.fixtures.handlers:poison_clicks",
        batch_size=100, batch_timeout_s=0.3, session_timeout_ms=6000,
    )  # fmt: skip
    runtime = ConsumerRuntime(
        pool.settings, config, decoder=Codec.load(), handler=resolve(config.handler), hooks=hooks
    )
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        url = pool.settings.database_url.get_secret_value()
        wait_until(caught_up(url, pool.group, total), 60, "the worker to catch up")
    finally:
        runtime.stop()
        thread.join(60)
    assert not thread.is_alive(), "the runtime did not stop within 60s"


def test_hooks_hear_each_committed_batch_and_each_dead_letter_with_the_right_numbers(
    worker_pool: WorkerPool, dlq_topic: str
) -> None:
    records, duplicates = _records(11)
    records = produce_records(worker_pool.settings, worker_pool.topic, records)
    poison = {(r.partition, r.offset): r for r in records if r.kind != "good"}
    good = [r.event for r in records if r.kind == "good" and r.event is not None]
    hooks = Recorder()

    _run_consumer(worker_pool, hooks, len(records))

    assert_applied_exactly(worker_pool, good, len(records))
    batches = hooks.of(BatchCommitted)
    assert batches
    assert all(isinstance(b, BatchCommitted) and b.group == worker_pool.group for b in batches)
    committed = [b for b in batches if isinstance(b, BatchCommitted)]
    decoded = [r for r in records if r.kind in ("good", "handler")]
    assert sum(b.events for b in committed) == len(decoded)
    assert sum(b.applied for b in committed) == len({e.event_id for e in good})
    assert sum(b.duplicates for b in committed) == duplicates
    assert sum(b.dead_letters for b in committed) == len(poison)
    assert sum(b.held_partitions for b in committed) == 0
    assert Counter(str(i) for b in committed for i in b.event_ids) == Counter(
        r.event_id for r in decoded
    )
    for batch in committed:
        assert len(batch.event_ids) == batch.events

    letters = [d for d in hooks.of(RecordDeadLettered) if isinstance(d, RecordDeadLettered)]
    assert {(d.partition, d.offset) for d in letters} == set(poison)
    assert len(letters) == len(poison)
    for letter in letters:
        source = poison[(letter.partition, letter.offset)]
        assert (letter.group, letter.topic) == (worker_pool.group, worker_pool.topic)
        assert letter.attempts == 1
        assert letter.error_class == ERRORS[source.kind].rsplit(".", 1)[1]
    assert len(outbox_dead_letters(worker_pool.settings, dlq_topic)) == len(poison)

    # Each commit follows the start of its batch (a batch retried after a transient failure
    # starts again), and its points were passed in order, the dead letters in between.
    calls = hooks.calls
    for n, call in enumerate(calls):
        if isinstance(call, BatchCommitted):
            start = max(i for i in range(n) if isinstance(calls[i], BatchStarted))
            started = calls[start]
            assert isinstance(started, BatchStarted)
            assert started.events == call.events
            between = calls[start + 1 : n]
            names = [c for c in between if isinstance(c, str)]
            expected = ["consumer.before_handler", "consumer.after_handler"]
            if call.dead_letters:
                expected.insert(1, "consumer.after_dead_letter")
            assert names == expected
            dead = [c for c in between if isinstance(c, RecordDeadLettered)]
            assert len(dead) == call.dead_letters
            assert calls[n + 1] == "consumer.after_commit"
            assert calls[start - 1] == "consumer.before_transaction"


def test_relay_hooks_hear_the_rows_it_marked_published(
    worker_pool: WorkerPool, dlq_topic: str
) -> None:
    records = produce_records(
        worker_pool.settings, worker_pool.topic,
        [poison_record("bad_magic", e) for e in make_clicks(5, seed=3)],
    )  # fmt: skip
    _run_consumer(worker_pool, Recorder(), len(records))
    assert len(outbox_dead_letters(worker_pool.settings, dlq_topic)) == len(records)

    hooks = Recorder()
    relay = Relay(worker_pool.settings, RelaySettings(), ProducerSettings(linger_ms=1), hooks=hooks)
    try:
        assert relay.run_once() == len(records)
        assert relay.run_once() == 0  # nothing left: no pass, no call
    finally:
        relay.request_stop()
        relay.run()  # closes its connections and its producer
    assert pending_rows(worker_pool.settings) == 0
    assert hooks.calls == ["relay.after_ack", "relay.after_mark", RowsPublished(len(records), 0)]
