"""The side-effects example (examples/side_effects) end to end: each receipt acts once downstream.

Clicks go to a ``requests`` worker that emits a ``ReceiptRequested`` per purchase through the
outbox; the relay publishes them; a ``sender`` worker POSTs each to a real local HTTP server
with ``Idempotency-Key: <event_id>``. The first sender is killed after its handler made the calls
and before its commit; the next one makes those calls again, and the downstream acts once per
key all the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oncepipe.kafka import AdminClient, create_topics
from schemas import ClickAction
from side_effects.downstream import Downstream
from side_effects.ids import receipt_id  # not .contract: it would register the type here
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, produce_clicks, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "side_effects"

pytestmark = pytest.mark.integration

RECEIPTS = "events.receipt_requested"


@pytest.fixture
def receipts_topic(kafka_admin: AdminClient) -> Iterator[str]:
    """The example's fixed derived-event topic, fresh for the test."""
    _delete(kafka_admin)
    create_topics(kafka_admin, {RECEIPTS: 3})
    yield RECEIPTS
    _delete(kafka_admin)


def _delete(admin: AdminClient) -> None:
    if RECEIPTS in admin.list_topics(timeout=10).topics:
        for future in admin.delete_topics([RECEIPTS], operation_timeout=30).values():
            future.result(timeout=60)


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = Downstream().start()
    yield server
    server.stop()


@pytest.mark.timeout(240)
def test_each_receipt_acts_once_downstream_though_the_sender_was_killed_and_called_again(
    worker_pool: WorkerPool,
    receipts_topic: str,
    downstream: Downstream,
    relay_thread: Callable[..., RelayThread],
    tmp_path: Path,
) -> None:
    settings = worker_pool.settings
    url = settings.database_url.get_secret_value()
    clicks = make_clicks(400, seed=6)
    expected = {str(receipt_id(c.event_id)) for c in clicks if c.action is ClickAction.PURCHASE}
    assert expected
    env = {"PYTHONPATH": str(EXAMPLE), "SIDE_EFFECTS_DOWNSTREAM_URL": downstream.url}
    worker_pool.extra_env.update(env)
    produce_clicks(settings, worker_pool.topic, clicks)
    requests = worker_pool.start(handler="side_effects.handlers:requests")
    relay_thread()

    senders = WorkerPool(settings, tmp_path, f"g-{uuid.uuid4().hex[:8]}", receipts_topic)
    senders.extra_env.update(env)
    try:
        killed = senders.start(
            handler="side_effects.handlers:sender", crash_points="consumer.after_handler"
        )
        wait_until(lambda: not killed.alive(), 120, "the first sender to kill itself")
        assert downstream.calls, "the killed sender made no call before its commit"
        called_before_kill = set(downstream.calls)
        survivor = senders.start(handler="side_effects.handlers:sender")
        wait_until(caught_up(url, senders.group, len(expected)), 120, "the sender to catch up")
        assert survivor.terminate() == 0, survivor.text()[-3000:]
    finally:
        senders.reap()
    assert requests.terminate() == 0, requests.text()[-3000:]

    assert set(downstream.effects) == expected
    # The killed sender's calls were made again (its batch never committed); acted on once.
    assert all(downstream.calls[key] >= 2 for key in called_before_kill)
    assert sum(downstream.calls.values()) > len(downstream.effects)
