"""An idle relay wakes on the outbox's NOTIFY: a committed row is published without waiting
for the poll interval (60 s here, far longer than the test may take)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from oncepipe.hooks import NoHooks, RowsPublished
from oncepipe.settings import Settings
from producers.outbox import enqueue
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from schemas import ClickAction, ClickEvent, Codec

pytestmark = pytest.mark.integration

POLL_S = 60.0
CODEC = Codec.load()


class Published(NoHooks):
    """Counts the rows the relay marked published; ``wait_for`` blocks until enough were."""

    def __init__(self) -> None:
        self.rows = 0
        self._changed = threading.Condition()

    def rows_published(self, rows: RowsPublished) -> None:
        with self._changed:
            self.rows += rows.rows
            self._changed.notify_all()

    def wait_for(self, rows: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.rows >= rows, timeout)


def _enqueue_one(settings: Settings, topic: str) -> None:
    event = ClickEvent(
        event_id=uuid.uuid4(), user_id="u-wake", item_id="item-1", action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC), session_id="s-wake",
    )  # fmt: skip
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        assert enqueue(conn, event, codec=CODEC, topic=topic)


def test_an_idle_relay_publishes_a_new_row_on_notify_not_after_its_poll_interval(
    settings: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    hooks = Published()
    relay = Relay(
        settings,
        RelaySettings(poll_interval_s=POLL_S, lease_s=POLL_S * 3),
        ProducerSettings(linger_ms=1),
        hooks=hooks,
    )
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        _enqueue_one(settings, topic)
        assert hooks.wait_for(1, POLL_S / 2), "the first row was not published"
        # The relay found nothing more and waits; only the NOTIFY of this commit can wake it
        # before its poll interval.
        _enqueue_one(settings, topic)
        assert hooks.wait_for(2, POLL_S / 2), "the relay slept through the NOTIFY"
    finally:
        relay.request_stop()
        _enqueue_one(settings, topic)  # wakes the waiting relay to see the stop
        thread.join(POLL_S + 30)
    assert not thread.is_alive(), "the relay did not stop"
