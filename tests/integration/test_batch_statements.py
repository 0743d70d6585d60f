"""The batch transaction's statements: the rows they leave, and the round trips they take.

The batch sends its inbox claim with the transaction's start and its offset compare-and-set
with the COMMIT (psycopg pipeline mode). The rows a batch leaves must not change: inbox,
offsets, effects, dead letters and parked events are compared with what the statements sent
one by one left, for a batch holding a duplicate, a redelivered event, poison and a parked key.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from consumers.attempts import Attempts
from consumers.batch import BatchResult, apply_batch
from consumers.context import HandlerContext
from consumers.decoding import Rejected
from consumers.events import Coordinates, InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.parking import Parking
from oncepipe.errors import FencedError, PoisonError
from oncepipe.hooks import NoHooks
from oncepipe.settings import Settings
from schemas import ClickEvent, Codec
from tests.fixtures.pgtrace import round_trips, start_trace
from tests.fixtures.workers import make_clicks

pytestmark = pytest.mark.integration

TOPIC = "t"


def _record(
    codec: Codec, event: ClickEvent, key: bytes, partition: int, offset: int
) -> InboundEvent:
    return InboundEvent(
        event=event, event_id=event.event_id, topic=TOPIC, partition=partition, offset=offset,
        key=key, timestamp_ms=1_000 + offset, value=codec.encode(event).value,
        headers=(("h", b"v"),),
    )  # fmt: skip


def _retiring(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The click handler, refusing the retired item as poison."""
    for inbound in events:
        assert isinstance(inbound.event, ClickEvent)
        if inbound.event.item_id == "retired":
            raise PoisonError("item retired is retired")
    handle_clicks(events, tx)


def _apply(
    conn: psycopg.Connection[Any],
    settings: Settings,
    events: list[InboundEvent],
    positions: dict[Coordinates, int | None],
    rejected: Sequence[Rejected] = (),
) -> BatchResult:
    return apply_batch(
        conn, settings=settings, group="g", events=events, positions=positions,
        handler=_retiring, rejected=rejected, parking=Parking(Codec.load()),
    )  # fmt: skip


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "inbox": 'SELECT event_id::text, topic, partition, "offset" FROM oncepipe.inbox'
        " WHERE consumer_group = 'g' ORDER BY partition, \"offset\"",
        "offsets": "SELECT topic, partition, next_offset FROM oncepipe.consumer_offsets"
        " WHERE consumer_group = 'g' ORDER BY partition",
        "raw": "SELECT event_id::text FROM public.click_events WHERE consumer_group = 'g'"
        " ORDER BY event_id",
        "items": "SELECT item_id, action, count FROM public.item_click_counts"
        " WHERE consumer_group = 'g' ORDER BY item_id, action",
        "dead_letters": "SELECT topic, key, value FROM oncepipe.outbox"
        " WHERE topic LIKE '%.dlq' ORDER BY id",
        "parked": 'SELECT topic, partition, "offset" FROM oncepipe.parked_events'
        " WHERE consumer_group = 'g' ORDER BY partition, \"offset\"",
    }
    with psycopg.connect(url) as conn:
        return {name: [tuple(r) for r in conn.execute(q).fetchall()] for name, q in queries.items()}


def test_a_batch_with_duplicates_poison_and_a_parked_key_leaves_the_same_rows(
    settings: Settings,
) -> None:
    codec = Codec.load()
    url = settings.database_url.get_secret_value()
    a, b, c, d = make_clicks(4, seed=61, items=3)
    blocker = make_clicks(1, seed=62)[0].model_copy(update={"item_id": "retired"})
    with psycopg.connect(url) as conn:
        # Applied before: its redelivery at offset 3 is a duplicate.
        _apply(conn, settings, [_record(codec, a, b"C", 0, 0)], {(TOPIC, 0): None})
        batch = [
            _record(codec, blocker, b"A", 0, 1),  # poison: dead-lettered
            _record(codec, b, b"B", 0, 2),
            _record(codec, a, b"C", 0, 3),  # applied by the batch before
            _record(codec, c, b"A", 0, 4),  # its key's earlier event was dead-lettered: parked
            _record(codec, b, b"B", 0, 5),  # a second copy inside the batch
            _record(codec, d, b"D", 1, 7),
        ]
        undecodable = Rejected(
            TOPIC, 1, 8, b"E", b"\x00garbage", (("h", b"v"),), 1_008, "decode",
            PoisonError("not an event"),
        )  # fmt: skip
        result = _apply(
            conn, settings, batch, {(TOPIC, 0): 1, (TOPIC, 1): None}, rejected=[undecodable]
        )
    assert (result.applied, result.duplicates, result.dead_letters, result.parked) == (2, 2, 2, 1)
    rows = _rows(url)
    assert rows["inbox"] == [
        (str(a.event_id), TOPIC, 0, 0),
        (str(b.event_id), TOPIC, 0, 2),
        (str(d.event_id), TOPIC, 1, 7),
    ]
    assert rows["offsets"] == [(TOPIC, 0, 6), (TOPIC, 1, 9)]
    assert rows["raw"] == sorted((str(e.event_id),) for e in (a, b, d))
    assert sum(n for _, _, n in rows["items"]) == 3
    assert rows["dead_letters"] == [
        (f"{TOPIC}.dlq", b"E", b"\x00garbage"),
        (f"{TOPIC}.dlq", b"A", codec.encode(blocker).value),
    ] or rows["dead_letters"] == [
        (f"{TOPIC}.dlq", b"A", codec.encode(blocker).value),
        (f"{TOPIC}.dlq", b"E", b"\x00garbage"),
    ]
    assert rows["parked"] == [(TOPIC, 0, 4)]


def test_a_fenced_batch_commits_nothing(settings: Settings) -> None:
    codec = Codec.load()
    url = settings.database_url.get_secret_value()
    first, second, third = make_clicks(3, seed=63)
    with psycopg.connect(url) as conn:
        _apply(conn, settings, [_record(codec, first, b"A", 0, 0)], {(TOPIC, 0): None})
        before = _rows(url)
        # Partition 1 is new (insert), partition 0 was moved by another owner (update fails).
        batch = [_record(codec, second, b"B", 0, 1), _record(codec, third, b"C", 1, 0)]
        with pytest.raises(FencedError, match=r"wrote 1 of 2 partitions.*another consumer"):
            _apply(conn, settings, batch, {(TOPIC, 0): 0, (TOPIC, 1): None})
        # The connection is usable again for the next batch, as the worker's is.
        result = _apply(conn, settings, batch, {(TOPIC, 0): 1, (TOPIC, 1): None})
    assert before["offsets"] == [(TOPIC, 0, 1)]
    assert result.applied == 2
    assert _rows(url)["offsets"] == [(TOPIC, 0, 2), (TOPIC, 1, 1)]


class _Points(NoHooks):
    def __init__(self) -> None:
        self.points: list[str] = []

    def point(self, name: str) -> None:
        self.points.append(name)


def test_a_plain_batch_takes_four_round_trips_to_postgresql(settings: Settings) -> None:
    """BEGIN, the inbox claim, the handler's statement, then offsets and COMMIT together."""
    codec = Codec.load()
    events = [_record(codec, e, b"K", 0, n) for n, e in enumerate(make_clicks(20, seed=64))]
    hooks = _Points()
    with (
        psycopg.connect(settings.database_url.get_secret_value()) as conn,
        tempfile.TemporaryFile() as out,
    ):
        start_trace(conn, out)
        result = apply_batch(
            conn, settings=settings, group="g", events=events, positions={(TOPIC, 0): None},
            handler=handle_clicks, hooks=hooks,
        )  # fmt: skip
        conn.pgconn.untrace()
        out.seek(0)
        trace = out.read().decode("utf-8", "replace")
    assert result.applied == 20
    assert hooks.points == ["consumer.before_handler", "consumer.after_handler"]
    assert round_trips(trace) == 4, trace


class _Record:
    """The three accessors of a Kafka record the attempt record reads."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_the_attempt_record_takes_two_round_trips_and_counts_as_before(
    settings: Settings,
) -> None:
    """BEGIN, SET and the state read in one; the attempt row and COMMIT in the other."""
    url = settings.database_url.get_secret_value()
    with tempfile.TemporaryFile() as out:
        opened: list[psycopg.Connection[Any]] = []

        def connect() -> psycopg.Connection[Any]:
            conn = psycopg.connect(url)
            start_trace(conn, out)
            opened.append(conn)
            return conn

        attempts = Attempts(connect, "g", uuid.uuid4(), limit=3)
        attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
        opened[0].pgconn.untrace()
        out.seek(0)
        trace = out.read().decode("utf-8", "replace")
        # The next attempt at the same range counts on: the first one committed.
        attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
        attempts.close()
    assert round_trips(trace) == 2, trace
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT start_offset, end_offset, attempts FROM oncepipe.consumer_attempts"
            " WHERE consumer_group = 'g'"
        ).fetchone()
    assert row == (0, 2, 2)
