"""A row the broker did not acknowledge holds back the later rows of its partition, only those.

librdkafka answers each record on its own: with an idempotent producer a record may fail (no
leader, too few in-sync replicas, a purge at the pass timeout) while a later record of the
same partition, sent in the same batch, is acknowledged. Marking that later row published
would let it overtake the failed one for good; the relay holds it with the failed row instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest

from oncepipe.errors import BrokerError
from oncepipe.settings import Settings
from producers.outbox import enqueue
from producers.partitioner import key_partition
from producers.producer import Delivery, OutgoingRecord
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from schemas import Codec
from tests.integration.test_outbox_relay import click

pytestmark = pytest.mark.integration

CODEC = Codec.load()
NOT_ENOUGH_REPLICAS = BrokerError(
    "delivering: NOT_ENOUGH_REPLICAS",
    code=19,
    name="NOT_ENOUGH_REPLICAS",
    retriable=True,
    fatal=False,
)


@pytest.fixture
def relay(settings: Settings) -> Iterator[Relay]:
    """A relay whose passes the test runs one by one."""
    relay = Relay(settings, RelaySettings(retry_backoff_s=60), ProducerSettings(linger_ms=1))
    yield relay
    relay.request_stop()
    relay.run()  # closes its connections and its producer


def answering(first_fails: bool) -> Callable[..., list[Delivery]]:
    """A send_all whose first record fails and whose others are acknowledged."""

    def send_all(records: Sequence[OutgoingRecord], *_: Any, **__: Any) -> list[Delivery]:
        return [
            Delivery(r.ref, NOT_ENOUGH_REPLICAS if first_fails and n == 0 else None, 0, n)
            for n, r in enumerate(records)
        ]

    return send_all


def rows(url: str) -> list[tuple[str, bool, bool]]:
    """(user, published, held) of each outbox row in id order."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT convert_from(key, 'UTF8'), published_at IS NOT NULL, not_before IS NOT NULL"
            " FROM oncepipe.outbox ORDER BY id"
        ).fetchall()
    return [(str(user), bool(published), bool(held)) for user, published, held in found]


def test_a_later_row_of_a_failed_rows_partition_is_held_not_marked_published(
    settings: Settings, relay: Relay, make_topic: Callable[..., str], monkeypatch: Any
) -> None:
    topic = make_topic(partitions=6)
    users = [f"user-{n}" for n in range(100)]
    stuck = users[0]
    other = next(u for u in users if key_partition(u.encode(), 6) != key_partition(b"user-0", 6))
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        for n, user in enumerate([stuck, stuck, other]):
            with conn.transaction():
                enqueue(conn, click(user, n), codec=CODEC, topic=topic)

    monkeypatch.setattr(relay._producer, "send_all", answering(first_fails=True))
    assert relay.run_once() == 1

    assert rows(url) == [(stuck, False, True), (stuck, False, True), (other, True, False)]
    # Held: the next pass does not send them, however often it runs.
    monkeypatch.setattr(relay._producer, "send_all", answering(first_fails=False))
    assert relay.run_once() == 0
    assert rows(url) == [(stuck, False, True), (stuck, False, True), (other, True, False)]


def test_a_new_row_of_a_held_partition_waits_behind_it(
    settings: Settings, relay: Relay, make_topic: Callable[..., str], monkeypatch: Any
) -> None:
    topic = make_topic(partitions=6)
    user = f"user-{uuid.uuid4().hex[:6]}"
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn, conn.transaction():
        enqueue(conn, click(user, 0), codec=CODEC, topic=topic)
    monkeypatch.setattr(relay._producer, "send_all", answering(first_fails=True))
    assert relay.run_once() == 0

    with psycopg.connect(url) as conn, conn.transaction():
        enqueue(conn, click(user, 1), codec=CODEC, topic=topic)
    monkeypatch.setattr(relay._producer, "send_all", answering(first_fails=False))
    assert relay.run_once() == 0
    assert rows(url) == [(user, False, True), (user, False, True)]
