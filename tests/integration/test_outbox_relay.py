"""Outbox -> relay -> Kafka: nothing lost, nothing added, per-key order kept."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import psycopg2
import pytest

from oncepipe.settings import Settings
from producers.outbox import enqueue, enqueue_record
from schemas import ClickAction, ClickEvent, Codec
from tests.fixtures.kafka import Record, read_topic
from tests.fixtures.relay import RelayThread, wait_drained

pytestmark = pytest.mark.integration

CODEC = Codec.load()


def click(user: str, n: int) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=user,
        item_id=f"item-{n % 13}",
        action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=f"s-{user}",
    )


def enqueue_all(settings: Settings, topic: str, events: list[ClickEvent]) -> None:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        for event in events:
            with conn.transaction():
                assert enqueue(conn, event, codec=CODEC, topic=topic)


def order_by_key(records: list[Record]) -> dict[bytes | None, list[str]]:
    by_key: dict[bytes | None, list[str]] = defaultdict(list)
    for record in records:  # sorted by (partition, offset): one key lives in one partition
        by_key[record.key].append(record.headers["event_id"])
    return by_key


def test_enqueued_events_reach_kafka_once_each_in_per_key_order_with_headers(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic()
    events = [click(f"user-{n % 7}", n) for n in range(300)]
    enqueue_all(settings, topic, events)
    relay_thread()
    wait_drained(settings)

    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=300)
    assert sorted(r.headers["event_id"] for r in records) == sorted(str(e.event_id) for e in events)
    expected_order: dict[bytes | None, list[str]] = defaultdict(list)
    for event in events:
        expected_order[event.user_id.encode()].append(str(event.event_id))
    assert order_by_key(records) == expected_order
    first = records[0]
    assert {"event_id", "event_type", "schema_fingerprint", "produced_at"} <= first.headers.keys()
    assert first.headers["event_type"] == "ClickEvent"
    assert first.headers["schema_fingerprint"] == CODEC.newest_fingerprint("ClickEvent")
    assert CODEC.decode(first.value).record["event_id"] is not None


def test_the_same_event_id_enqueued_twice_is_one_row_and_one_record(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic()
    event = click("user-1", 1)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        with conn.transaction():
            assert enqueue(conn, event, codec=CODEC, topic=topic) is True
        with conn.transaction():  # the upstream request retried with the same idempotency key
            assert enqueue(conn, event, codec=CODEC, topic=topic) is False
        rows = conn.execute("SELECT count(*) FROM oncepipe.outbox").fetchone()
    assert rows == (1,)
    relay_thread()
    wait_drained(settings)
    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=1, settle=2.0)
    assert [r.headers["event_id"] for r in records] == [str(event.event_id)]


def test_a_row_committed_after_a_higher_id_is_still_published(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic()
    url = settings.database_url.get_secret_value()
    late, early = click("user-a", 1), click("user-b", 2)
    with psycopg.connect(url) as slow, psycopg.connect(url) as fast:
        slow_tx = slow.transaction()
        slow_tx.__enter__()
        enqueue(slow, late, codec=CODEC, topic=topic)  # takes the lower id, commits last
        with fast.transaction():
            enqueue(fast, early, codec=CODEC, topic=topic)
        relay_thread()
        wait_drained(settings)
        slow_tx.__exit__(None, None, None)
        ids = slow.execute("SELECT id, dedupe_id FROM oncepipe.outbox ORDER BY id").fetchall()
    assert [row[1] for row in ids] == [str(late.event_id), str(early.event_id)]
    wait_drained(settings)
    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=2)
    assert sorted(r.headers["event_id"] for r in records) == sorted(
        [str(late.event_id), str(early.event_id)]
    )


def test_other_languages_enqueue_through_the_sql_function(settings: Settings) -> None:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        first = conn.execute(
            "SELECT oncepipe.enqueue('events.x', 'id-1', 'k'::bytea, 'v'::bytea,"
            ' \'[["event_id", "id-1"]]\'::jsonb)'
        ).fetchone()
        again = conn.execute(
            "SELECT oncepipe.enqueue('events.x', 'id-1', 'k'::bytea, 'v2'::bytea)"
        ).fetchone()
    assert first is not None
    assert isinstance(first[0], int)
    assert again == (None,)


def test_enqueue_works_with_a_psycopg2_connection(settings: Settings) -> None:
    event = click("user-9", 9)
    conn = psycopg2.connect(settings.database_url.get_secret_value())
    try:
        with conn:  # psycopg2: commit on success
            assert enqueue(conn, event, codec=CODEC, topic="events.click") is True
        with conn:
            row_id = enqueue_record(
                conn, "events.click", str(event.event_id), key=b"k", value=b"v", headers=[]
            )
            assert row_id is None
    finally:
        conn.close()


def test_published_rows_past_retention_are_deleted(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic()
    enqueue_all(settings, topic, [click("user-1", n) for n in range(20)])
    relay = relay_thread(retention_s=0.0, cleanup_interval_s=0.2)
    wait_drained(settings)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        for _ in range(50):
            (left,) = conn.execute("SELECT count(*) FROM oncepipe.outbox").fetchone() or (0,)
            if left == 0:
                break
            time.sleep(0.2)
    assert left == 0
    assert relay.relay.published == 20


def test_enqueue_is_atomic_with_the_callers_business_write(settings: Settings) -> None:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.commit()

        def upstream_request() -> None:
            with conn.transaction():
                conn.execute("INSERT INTO orders VALUES (1)")
                enqueue(conn, click("user-1", 1), codec=CODEC, topic="events.click")
                conn.execute("INSERT INTO orders VALUES (1)")  # the business write fails

        with pytest.raises(psycopg.errors.UniqueViolation):
            upstream_request()
        rows = conn.execute("SELECT count(*) FROM oncepipe.outbox").fetchone()
    assert rows == (0,)
