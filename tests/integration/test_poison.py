"""Poison never blocks: every kind of poison becomes one dead letter; its neighbours apply.

Invariant 7: a record that can never succeed leaves through the outbox, in the transaction
that moves the offset past it, with its original bytes and the dead-letter headers; the
records around it are applied in that same transaction.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.deadletter_headers import MAX_STACKTRACE_BYTES
from tests.fixtures.poison import (
    ERRORS,
    KINDS,
    MAX_PAYLOAD_BYTES,
    PAYLOAD_MARK,
    STAGES,
    Produced,
    assert_applied_exactly,
    dead_letters,
    good_record,
    outbox_dead_letters,
    poison_record,
    produce_records,
)
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration

POISON_ENV = {
    "max_payload_bytes": str(MAX_PAYLOAD_BYTES),
    "unknown_schema_grace_s": "0",
    "batch_size": "100",
}


def mixed(seed: int, good: int, per_kind: int) -> list[Produced]:
    """``good`` click records with ``per_kind`` poison records of each kind among them."""
    rng = random.Random(seed)
    events = make_clicks(good, seed=seed)
    records = [good_record(e) for e in events]
    for kind in KINDS:
        for _ in range(per_kind):
            records.insert(rng.randrange(len(records) + 1), poison_record(kind, rng.choice(events)))
    return records


def test_each_poison_kind_becomes_one_dead_letter_with_its_bytes_and_neighbours_apply(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    records = produce_records(worker_pool.settings, worker_pool.topic, mixed(7, 600, 3))
    poison = {(r.partition, r.offset): r for r in records if r.kind != "good"}
    good = [r.event for r in records if r.kind == "good" and r.event is not None]
    relay_thread()
    worker = worker_pool.start(handler="tests.fixtures.handlers:poison_clicks", **POISON_ENV)
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the worker to catch up")
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_applied_exactly(worker_pool, good, len(records))

    letters = dead_letters(worker_pool.settings, dlq_topic, expected=len(poison))
    by_source = Counter((d.source_partition, d.source_offset) for d in letters)
    assert set(by_source) == set(poison)
    assert max(by_source.values()) == 1
    for letter in letters:
        original = poison[(letter.source_partition or 0, letter.source_offset or 0)]
        assert letter.dialect == "oncepipe"
        assert letter.source_topic == worker_pool.topic
        assert letter.consumer_group == worker_pool.group
        assert (letter.key, letter.value) == (original.key, original.value)
        assert letter.stage == STAGES[original.kind], original.kind
        assert letter.error_class == ERRORS[original.kind]
        assert letter.event_id == original.event_id
        assert letter.attempts == 1
        assert letter.first_failure is not None
        assert letter.last_failure is not None
        assert letter.first_failure <= letter.last_failure
        assert letter.source_timestamp is not None
        assert 0 < len(letter.stacktrace.encode()) <= MAX_STACKTRACE_BYTES
        assert PAYLOAD_MARK not in letter.error_message + letter.stacktrace
    invalid = [d for d in letters if d.stage == "validate"]
    assert all("user_id" in d.error_message for d in invalid)

    logged = [line for line in worker.lines() if line.get("event") == "dead letter"]
    assert {(line["partition"], line["offset"]) for line in logged} == set(poison)
    assert all(
        {"topic", "event_id", "consumer_group", "stage", "error_class"} <= set(line)
        for line in logged
    )


def test_a_handler_failing_once_is_retried_and_applied_not_dead_lettered(
    worker_pool: WorkerPool, dlq_topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = make_clicks(300, seed=8)
    flaky = [e.model_copy(update={"item_id": f"flaky-{n}"}) for n, e in enumerate(events[::50])]
    clicks = [e for e in events if e.event_id not in {f.event_id for f in flaky}] + flaky
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in clicks]
    )
    memory = tmp_path / "memory"
    memory.mkdir()
    monkeypatch.setenv("ONCEPIPE_TEST_MEMORY_DIR", str(memory))
    worker = worker_pool.start(handler="tests.fixtures.handlers:flaky_clicks", batch_size="100")
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the worker to catch up")
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_applied_exactly(worker_pool, clicks, len(records))
    assert len(list(memory.iterdir())) == len(flaky), "each flaky click failed once"
    assert outbox_dead_letters(worker_pool.settings, dlq_topic) == []
    assert worker.logged("handler failed, isolating")()
