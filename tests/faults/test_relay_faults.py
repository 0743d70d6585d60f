"""The relay under faults: crashes after the ack, competing relays, a broker outage."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
import pytest

from oncepipe.settings import Settings
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import RelayThread, pending_rows, wait_drained
from tests.fixtures.services import Services
from tests.integration.test_outbox_relay import click, enqueue_all, order_by_key

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_relay_killed_after_the_ack_loses_nothing_and_leaves_resends_to_the_inbox(
    settings: Settings,
    make_topic: Callable[..., str],
    relay_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    topic = make_topic()
    events = [click(f"user-{n % 5}", n) for n in range(200)]
    enqueue_all(settings, topic, events)

    crashed = relay_process(ONCEPIPE_CRASH_POINTS="relay.after_ack", ONCEPIPE_RELAY_BATCH_SIZE="50")
    assert crashed.wait(60) == -signal.SIGKILL
    assert pending_rows(settings) == 200  # acknowledged by Kafka, not yet marked published

    survivor = relay_process()
    wait_drained(settings)
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(30) == 0

    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=250)
    ids = [r.headers["event_id"] for r in records]
    assert set(ids) == {str(e.event_id) for e in events}  # no row lost
    assert len(ids) == 250  # the 50 acknowledged before the crash were sent again
    resent = {i for i in ids if ids.count(i) == 2}
    assert resent == {str(e.event_id) for e in events[:50]}


def test_two_relays_at_once_keep_per_key_order(
    settings: Settings,
    make_topic: Callable[..., str],
    relay_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    topic = make_topic()
    relays = [relay_process(ONCEPIPE_RELAY_BATCH_SIZE="20") for _ in range(2)]
    events = [click(f"user-{n % 4}", n) for n in range(400)]
    enqueue_all(settings, topic, events)  # while both relays run
    wait_drained(settings)
    for relay in relays:
        relay.send_signal(signal.SIGTERM)
    assert [relay.wait(30) for relay in relays] == [0, 0]

    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=400)
    expected: dict[bytes | None, list[str]] = defaultdict(list)
    for event in events:
        expected[event.user_id.encode()].append(str(event.event_id))
    assert order_by_key(records) == expected


@pytest.mark.slow
def test_broker_stopped_for_20s_under_load_the_relay_waits_and_loses_nothing(
    services: Services,
    settings: Settings,
    make_topic: Callable[..., str],
    relay_thread: Callable[..., RelayThread],
) -> None:
    kafka, _ = services.require_native()
    topic = make_topic()
    relay_thread(batch_size=100)
    events = [click(f"user-{n % 9}", n) for n in range(3000)]

    writer = threading.Thread(target=enqueue_all, args=(settings, topic, events))
    writer.start()
    time.sleep(1.0)
    kafka.stop()
    try:
        time.sleep(20)
        assert pending_rows(settings) > 0  # work piled up while the broker was away
    finally:
        kafka.start()
    writer.join(120)
    wait_drained(settings, timeout=180)

    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=3000, timeout=120)
    ids = [r.headers["event_id"] for r in records]
    assert set(ids) == {str(e.event_id) for e in events}
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        failed = conn.execute("SELECT count(*) FROM oncepipe.outbox WHERE failed_at IS NOT NULL")
        assert failed.fetchone() == (0,)
