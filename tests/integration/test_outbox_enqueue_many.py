"""``enqueue_many``: the rows, flags and notifications of one ``enqueue`` per event, in one go."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg2
import pytest

from oncepipe.settings import Settings
from producers.outbox import enqueue, enqueue_many
from schemas import ClickAction, ClickEvent, Codec

pytestmark = pytest.mark.integration

CODEC = Codec.load()
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def click(n: int, context: dict[str, str] | None = None) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=f"user-{n % 7}",
        item_id=f"item-{n}",
        action=ClickAction.VIEW,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=f"s-{n}",
        context=context,
    )


def rows(conn: Any, topic: str) -> list[tuple[Any, ...]]:
    """The rows of ``topic`` in id order, produced_at left out (a clock reading)."""
    found = conn.execute(
        "SELECT dedupe_id, key, value, header_names, header_values, shard"
        " FROM oncepipe.outbox WHERE topic = %s ORDER BY id",
        (topic,),
    ).fetchall()
    out = []
    for dedupe_id, key, value, names, values, shard in found:
        headers = [
            (bytes(n), bytes(v)) for n, v in zip(names, values, strict=True) if n != b"produced_at"
        ]
        out.append((dedupe_id, bytes(key), bytes(value), headers, shard))
    return out


def test_a_batch_writes_the_rows_one_enqueue_per_event_writes(settings: Settings) -> None:
    events = [click(n, {"n": str(n)} if n % 2 else None) for n in range(150)]
    topic_one, topic_many = f"one-{uuid.uuid4().hex}", f"many-{uuid.uuid4().hex}"
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        with conn.transaction():
            for event in events:
                assert enqueue(conn, event, codec=CODEC, topic=topic_one, traceparent=TRACEPARENT)
        with conn.transaction():
            flags = enqueue_many(
                conn, events, codec=CODEC, topic=topic_many, traceparent=TRACEPARENT
            )
        assert flags == [True] * len(events)
        assert rows(conn, topic_many) == rows(conn, topic_one)
        assert len(rows(conn, topic_many)) == len(events)


def test_an_event_already_queued_or_repeated_in_the_batch_is_added_once(
    settings: Settings,
) -> None:
    topic = f"dup-{uuid.uuid4().hex}"
    queued, fresh, other = click(1), click(2), click(3)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        with conn.transaction():
            assert enqueue(conn, queued, codec=CODEC, topic=topic)
        with conn.transaction():  # an upstream retry, with a repeat inside the batch
            flags = enqueue_many(conn, [fresh, queued, fresh, other], codec=CODEC, topic=topic)
        assert flags == [True, False, False, True]
        dedupe_ids = [r[0] for r in rows(conn, topic)]
    assert dedupe_ids == [str(e.event_id) for e in (queued, fresh, other)]


def test_the_batch_commits_or_rolls_back_with_the_callers_transaction(
    settings: Settings,
) -> None:
    topic = f"atomic-{uuid.uuid4().hex}"
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        with conn.transaction():
            flags = enqueue_many(conn, [click(1), click(2)], codec=CODEC, topic=topic)
            assert len(rows(conn, topic)) == 2
            raise psycopg.Rollback  # the caller's business write failed: all is undone
        assert flags == [True, True]
        assert rows(conn, topic) == []


def test_listeners_are_notified_of_the_topic_once_the_batch_commits(settings: Settings) -> None:
    topic = f"notify-{uuid.uuid4().hex}"
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url, autocommit=True) as listener, psycopg.connect(url) as conn:
        listener.execute("LISTEN oncepipe_outbox")
        with conn.transaction():
            enqueue_many(conn, [click(1), click(2), click(3)], codec=CODEC, topic=topic)
        payloads = []
        for note in listener.notifies(timeout=30):
            payloads.append(note.payload)
            if note.payload == topic:
                break
    assert topic in payloads


def test_a_psycopg2_connection_works_too(settings: Settings) -> None:
    topic = f"pg2-{uuid.uuid4().hex}"
    event = click(1)
    conn = psycopg2.connect(settings.database_url.get_secret_value())
    try:
        with conn:
            assert enqueue_many(conn, [event, click(2)], codec=CODEC, topic=topic) == [True, True]
        with conn:
            assert enqueue_many(conn, [event], codec=CODEC, topic=topic) == [False]
    finally:
        conn.close()


def test_the_producer_role_may_enqueue_a_batch(settings: Settings) -> None:
    topic = f"role-{uuid.uuid4().hex}"
    event = click(1)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute("SELECT oncepipe.apply_grants()")  # this test database's grants
        conn.commit()
        with conn.transaction():
            conn.execute("SET LOCAL ROLE oncepipe_producer")
            assert enqueue_many(conn, [event, click(2)], codec=CODEC, topic=topic) == [True, True]
            assert enqueue_many(conn, [event], codec=CODEC, topic=topic) == [False]
