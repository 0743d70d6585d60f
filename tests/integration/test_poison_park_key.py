"""park-key: the later events of a poisoned key wait, in order, while other keys flow on.

Batches are applied as the worker applies them (``apply_batch`` with a ``Parking``) against
the real PostgreSQL; a replayed blocker is the same event (same id and bytes) at a new offset.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest

from consumers.batch import BatchResult, apply_batch
from consumers.context import HandlerContext
from consumers.dlq.parked import discard_blockers, parked_counts
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.parking import Parking
from consumers.retries import Retries, RetryLater
from oncepipe.errors import PoisonError
from oncepipe.settings import Settings
from schemas import ClickEvent, Codec
from tests.fixtures.workers import make_clicks, read_totals

pytestmark = pytest.mark.integration

TOPIC = "t"


class Retiring:
    """A handler that refuses retired items (until the operator un-retires them), in order."""

    def __init__(self, retired: set[str]) -> None:
        self.retired = retired
        self.seen: list[str] = []

    def __call__(self, events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        for inbound in events:
            assert isinstance(inbound.event, ClickEvent)
            if inbound.event.item_id in self.retired:
                raise PoisonError(f"item {inbound.event.item_id} is retired")
        self.seen += [str(e.event_id) for e in events]
        handle_clicks(events, tx)


def record(codec: Codec, event: ClickEvent, key: bytes, offset: int) -> InboundEvent:
    return InboundEvent(
        event=event, event_id=event.event_id, topic=TOPIC, partition=0, offset=offset, key=key,
        timestamp_ms=1_000 + offset, value=codec.encode(event).value, headers=(("h", b"v"),),
    )  # fmt: skip


def apply(
    settings: Settings, events: list[InboundEvent], position: int | None, handler: Retiring
) -> BatchResult:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return apply_batch(
            conn, settings=settings, group="g", events=events, positions={(TOPIC, 0): position},
            handler=handler, parking=Parking(Codec.load()),
        )  # fmt: skip


def counts(settings: Settings) -> dict[tuple[str, str, int, int], int]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return parked_counts(conn, "g")


def test_later_events_of_a_poisoned_key_wait_and_replay_releases_them_in_order(
    settings: Settings,
) -> None:
    codec = Codec.load()
    a = make_clicks(4, seed=31, items=5)
    b = make_clicks(3, seed=32, items=5)
    blocker = a[0].model_copy(update={"item_id": "retired-1"})
    handler = Retiring({"retired-1"})
    first = [
        record(codec, blocker, b"A", 0), record(codec, b[0], b"B", 1),
        record(codec, a[1], b"A", 2), record(codec, b[1], b"B", 3), record(codec, a[2], b"A", 4),
    ]  # fmt: skip
    result = apply(settings, first, None, handler)
    assert (result.dead_letters, result.parked, result.applied) == (1, 2, 2)
    # Other keys' counters are exact while A waits.
    url = settings.database_url.get_secret_value()
    assert sorted(read_totals(url, "g").raw_ids) == sorted([b[0].event_id, b[1].event_id])
    assert counts(settings) == {("g", TOPIC, 0, 0): 2}

    later = apply(
        settings, [record(codec, a[3], b"A", 5), record(codec, b[2], b"B", 6)], 5, handler
    )
    assert (later.parked, later.applied) == (1, 1)
    assert counts(settings) == {("g", TOPIC, 0, 0): 3}
    assert read_totals(url, "g").stored_offsets == {0: 7}

    # The operator un-retires the item and replays the blocker: same event, new offset.
    handler.retired.clear()
    handler.seen.clear()
    replayed = apply(settings, [record(codec, blocker, b"A", 7)], 7, handler)
    assert (replayed.released, replayed.applied) == (3, 4)
    assert handler.seen == [str(e.event_id) for e in (blocker, a[1], a[2], a[3])]
    assert counts(settings) == {}
    totals = read_totals(url, "g")
    assert sorted(totals.raw_ids) == sorted(e.event_id for e in (blocker, *a[1:], *b))
    assert totals.inbox == 7

    # Exactly once: the replay redelivered applies nothing, parks nothing.
    again = apply(settings, [record(codec, blocker, b"A", 8)], 8, handler)
    assert (again.applied, again.parked, again.released) == (0, 0, 0)


def test_discarding_the_blocker_releases_the_parked_events_once_and_records_it(
    settings: Settings,
) -> None:
    codec = Codec.load()
    c = make_clicks(3, seed=33, items=5)
    blocker = c[0].model_copy(update={"item_id": "retired-2"})
    handler = Retiring({"retired-2"})
    batch = [record(codec, blocker, b"C", 0), *(record(codec, e, b"C", n) for n, e in
             enumerate(c[1:], start=1))]  # fmt: skip
    assert apply(settings, batch, None, handler).parked == 2
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        marked = discard_blockers(conn, [("g", TOPIC, 0, 0, "t.dlq", 0, 5, None)])
        assert marked == 1
        outcome = conn.execute(
            "SELECT outcome FROM oncepipe.dlq_replays WHERE dlq_topic = 't.dlq'"
        ).fetchone()
    assert outcome == ("discarded",)
    # An idle check (no records) releases them, in order; the blocker stays unapplied.
    handler.seen.clear()
    idle = apply(settings, [], 3, handler)
    assert idle.released == 2
    assert handler.seen == [str(e.event_id) for e in c[1:]]
    assert counts(settings) == {}
    # A later event of C flows at once.
    fresh = make_clicks(1, seed=34)[0]
    assert apply(settings, [record(codec, fresh, b"C", 3)], 3, handler).applied == 1


class Deferring(Retiring):
    """Asks to retry its first event later once; records what it applied, in order."""

    def __init__(self, event_id: str) -> None:
        super().__init__(set())
        self.event_id = event_id
        self.deferred = False

    def __call__(self, events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        if not self.deferred and any(str(e.event_id) == self.event_id for e in events):
            raise RetryLater("503 from the pricing service")
        super().__call__(events, tx)


def test_a_key_stays_parked_while_its_event_waits_for_a_delayed_retry(settings: Settings) -> None:
    codec = Codec.load()
    d = make_clicks(3, seed=35, items=5)
    handler = Deferring(str(d[0].event_id))
    retries = Retries(Codec.load(), (0.0,), check_s=0.0)
    batch = [record(codec, e, b"D", n) for n, e in enumerate(d[:2])]
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        first = apply_batch(
            conn, settings=settings, group="g", events=batch, positions={(TOPIC, 0): None},
            handler=handler, parking=Parking(codec), retries=retries,
        )  # fmt: skip
        assert (first.retrying, first.parked, first.applied) == (1, 1, 0)
        assert counts(settings) == {("g", TOPIC, 0, 0): 1}
        handler.deferred = True
        # The retry is due (tier 0): it is applied, then what waited behind it, then the new.
        second = apply_batch(
            conn, settings=settings, group="g", events=[record(codec, d[2], b"D", 2)],
            positions={(TOPIC, 0): 2}, handler=handler, parking=Parking(codec), retries=retries,
        )  # fmt: skip
    assert (second.released, second.applied) == (1, 3)
    assert handler.seen == [str(e.event_id) for e in d]
    assert counts(settings) == {}


class Breaking(Retiring):
    """Fails an event with an ordinary error (a bug, not poison) once it comes back."""

    def __init__(self, defer: str, retired: set[str]) -> None:
        super().__init__(retired)
        self.defer = defer
        self.broken: set[str] = set()

    def __call__(self, events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        for inbound in events:
            if str(inbound.event_id) in self.broken:
                raise ValueError("the handler has a bug")
            if str(inbound.event_id) == self.defer:
                raise RetryLater("503 from the pricing service")
        super().__call__(events, tx)


def assert_dead_lettered_at_once(result: BatchResult, settings: Settings, offset: int) -> None:
    """One dead letter, no hold, and the partition's offset only forward, to ``offset``."""
    assert (result.dead_letters, dict(result.held)) == (1, {})
    assert [(m.expected, m.next_offset) for m in result.moves] == [(offset - 1, offset)]
    url = settings.database_url.get_secret_value()
    assert read_totals(url, "g").stored_offsets == {0: offset}
    with psycopg.connect(url) as conn:
        # Dead-lettered, not counted towards a hold that would try it again.
        assert conn.execute("SELECT count(*) FROM oncepipe.consumer_failures").fetchone() == (0,)


def test_a_delayed_retry_that_fails_with_an_ordinary_error_is_dead_lettered_at_once(
    settings: Settings,
) -> None:
    codec = Codec.load()
    e = make_clicks(3, seed=36, items=5)
    handler = Breaking(str(e[0].event_id), set())
    retries = Retries(codec, (0.0,), check_s=0.0)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        first = apply_batch(
            conn, settings=settings, group="g", positions={(TOPIC, 0): None}, handler=handler,
            events=[record(codec, e[0], b"E", 0), record(codec, e[1], b"F", 1)], retries=retries,
        )  # fmt: skip
        assert (first.retrying, first.applied) == (1, 1)
        # Back from its tier (offset 0, behind the stored 2), it fails: a bug in the handler.
        handler.defer, handler.broken = "", {str(e[0].event_id)}
        second = apply_batch(
            conn, settings=settings, group="g", events=[record(codec, e[2], b"F", 2)],
            positions={(TOPIC, 0): 2}, handler=handler, retries=retries,
        )  # fmt: skip
    assert second.applied == 1
    assert_dead_lettered_at_once(second, settings, 3)
    url = settings.database_url.get_secret_value()
    assert sorted(read_totals(url, "g").raw_ids) == sorted([e[1].event_id, e[2].event_id])


def test_a_released_parked_event_that_fails_with_an_ordinary_error_is_dead_lettered_at_once(
    settings: Settings,
) -> None:
    codec = Codec.load()
    g = make_clicks(3, seed=37, items=5)
    blocker = g[0].model_copy(update={"item_id": "retired-3"})
    handler = Breaking("", {"retired-3"})
    batch = [record(codec, blocker, b"G", 0), record(codec, g[1], b"G", 1)]
    assert apply(settings, batch, None, handler).parked == 1
    # The blocker is replayed and applies; the event parked behind it now fails (a bug).
    handler.retired.clear()
    handler.broken = {str(g[1].event_id)}
    replayed = apply(settings, [record(codec, blocker, b"G", 2)], 2, handler)
    assert (replayed.released, replayed.applied) == (1, 1)
    assert_dead_lettered_at_once(replayed, settings, 3)
    # It blocks its key in turn (nothing parked behind it yet), so order still holds.
    assert counts(settings) == {("g", TOPIC, 0, 1): 0}
    assert apply(settings, [record(codec, g[2], b"G", 3)], 3, handler).parked == 1
