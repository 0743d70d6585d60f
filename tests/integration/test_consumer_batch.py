"""One batch, one transaction: inbox dedupe, handler on new events only, offset fence."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest

from consumers.batch import apply_batch
from consumers.context import HandlerContext, outbox_sink
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.offsets import load
from oncepipe.errors import FencedError, PoisonError, RetriableError
from oncepipe.settings import Settings
from schemas import Codec
from tests.fixtures.workers import make_clicks, read_totals

pytestmark = pytest.mark.integration


def inbound(events, partition: int = 0, first_offset: int = 0) -> list[InboundEvent]:
    return [
        InboundEvent(
            event=e, event_id=e.event_id, topic="t", partition=partition, offset=first_offset + n
        )
        for n, e in enumerate(events)
    ]


def apply(settings: Settings, events, positions, group: str = "g", handler=handle_clicks):
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return apply_batch(
            conn,
            settings=settings,
            group=group,
            events=events,
            positions=positions,
            handler=handler,
        )


def stored(settings: Settings, group: str = "g") -> dict[tuple[str, int], int | None]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn, conn.cursor() as cur:
        return load(cur, group, [("t", 0), ("t", 1)])


def test_a_duplicate_inside_one_batch_is_applied_once(settings: Settings) -> None:
    a, b = make_clicks(2, seed=1)
    result = apply(settings, inbound([a, b, a]), {("t", 0): None})
    assert (result.applied, result.duplicates) == (2, 1)
    totals = read_totals(settings.database_url.get_secret_value(), "g")
    assert sorted(totals.raw_ids) == sorted([a.event_id, b.event_id])
    assert sum(totals.items.values()) == 2
    assert stored(settings)[("t", 0)] == 3


def test_events_applied_before_reach_the_handler_no_more(settings: Settings) -> None:
    events = make_clicks(3, seed=2)
    apply(settings, inbound(events), {("t", 0): None})
    seen: list[int] = []

    def spy(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        seen.extend(e.offset for e in new)
        handle_clicks(new, tx)

    fresh = make_clicks(4, seed=3)[3:]
    result = apply(settings, inbound([*events, *fresh], first_offset=3), {("t", 0): 3}, handler=spy)
    assert seen == [6]
    assert (result.applied, result.duplicates) == (1, 3)
    assert sum(read_totals(settings.database_url.get_secret_value(), "g").items.values()) == 4


def test_a_moved_offset_fences_the_batch_and_rolls_everything_back(settings: Settings) -> None:
    first, second = make_clicks(2, seed=4)
    apply(settings, inbound([first]), {("t", 0): None})
    # This worker still believes the partition is at 0: another owner moved it to 1.
    with pytest.raises(FencedError, match="another consumer"):
        apply(settings, inbound([second]), {("t", 0): 0})
    totals = read_totals(settings.database_url.get_secret_value(), "g")
    assert totals.raw_ids == [first.event_id]
    assert totals.inbox == 1
    assert stored(settings)[("t", 0)] == 1


def test_a_partition_first_stored_by_someone_else_fences_the_insert(settings: Settings) -> None:
    first, second = make_clicks(2, seed=6)
    apply(settings, inbound([first], partition=1), {("t", 1): None})
    with pytest.raises(FencedError):
        apply(settings, inbound([second], partition=1), {("t", 1): None})
    assert read_totals(settings.database_url.get_secret_value(), "g").inbox == 1


def failed_counts(settings: Settings) -> list[tuple[int, int]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        rows = conn.execute(
            'SELECT "offset", attempts FROM oncepipe.consumer_failures ORDER BY 1'
        ).fetchall()
    return [(int(o), int(n)) for o, n in rows]


def test_a_failing_handler_holds_the_partition_at_the_event_and_counts_it(
    settings: Settings,
) -> None:
    def failing(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        handle_clicks(new, tx)
        raise RuntimeError("handler bug")

    result = apply(settings, inbound(make_clicks(2, seed=7)), {("t", 0): None}, handler=failing)
    assert dict(result.held) == {("t", 0): 0}
    assert (result.applied, result.dead_letters) == (0, 0)
    totals = read_totals(settings.database_url.get_secret_value(), "g")
    assert (totals.inbox, totals.raw_ids, totals.items) == (0, [], {})
    assert stored(settings)[("t", 0)] == 0
    assert failed_counts(settings) == [(0, 1)]


def test_the_events_before_a_failing_one_apply_and_the_partition_stops_there(
    settings: Settings,
) -> None:
    events = make_clicks(10, seed=12)

    def fails_on_sixth(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        if any(e.event_id == events[5].event_id for e in new):
            raise KeyError("sixth")
        handle_clicks(new, tx)

    result = apply(settings, inbound(events), {("t", 0): None}, handler=fails_on_sixth)
    assert dict(result.held) == {("t", 0): 5}
    assert (result.events, result.applied) == (5, 5)
    totals = read_totals(settings.database_url.get_secret_value(), "g")
    assert sorted(totals.raw_ids) == sorted(e.event_id for e in events[:5])
    assert stored(settings)[("t", 0)] == 5


def test_handler_poison_is_dead_lettered_in_the_batch_and_its_neighbours_apply(
    settings: Settings,
) -> None:
    events = make_clicks(10, seed=13)
    poison = {events[2].event_id, events[7].event_id}

    def refusing(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        if any(e.event_id in poison for e in new):
            raise PoisonError("refused")
        handle_clicks(new, tx)

    result = apply(settings, inbound(events), {("t", 0): None}, handler=refusing)
    assert (result.applied, result.dead_letters, dict(result.held)) == (8, 2, {})
    url = settings.database_url.get_secret_value()
    totals = read_totals(url, "g")
    assert sorted(totals.raw_ids) == sorted(e.event_id for e in events if e.event_id not in poison)
    assert totals.inbox == 8
    assert stored(settings)[("t", 0)] == 10
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT topic, dedupe_id FROM oncepipe.outbox ORDER BY id").fetchall()
    assert rows == [("t.dlq", "t:0:2:g"), ("t.dlq", "t:0:7:g")]


def test_a_transient_handler_failure_rolls_everything_back_and_counts_nothing(
    settings: Settings,
) -> None:
    def lost(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        raise psycopg.errors.SerializationFailure("could not serialize")

    with pytest.raises(RetriableError):
        apply(settings, inbound(make_clicks(3, seed=14)), {("t", 0): None}, handler=lost)
    assert stored(settings)[("t", 0)] is None
    assert failed_counts(settings) == []


def test_two_groups_are_independent_pipelines(settings: Settings) -> None:
    events = make_clicks(5, seed=8)
    apply(settings, inbound(events), {("t", 0): None}, group="a")
    result = apply(settings, inbound(events), {("t", 0): None}, group="b")
    assert result.applied == 5
    url = settings.database_url.get_secret_value()
    assert read_totals(url, "a").items == read_totals(url, "b").items
    assert sum(read_totals(url, "b").items.values()) == 5


def test_derived_events_reach_the_outbox_only_with_a_committed_batch(settings: Settings) -> None:
    source, derived, other = make_clicks(3, seed=9)

    def emitting(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        handle_clicks(new, tx)
        tx.emit(derived if new[0].event_id == source.event_id else other)

    sink = outbox_sink(Codec.load())
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        result = apply_batch(
            conn, settings=settings, group="g", events=inbound([source]),
            positions={("t", 0): None}, handler=emitting, sink=sink,
        )  # fmt: skip
        assert result.emitted == 1
        with pytest.raises(FencedError):
            apply_batch(
                conn, settings=settings, group="g", events=inbound([other], first_offset=1),
                positions={("t", 0): 0}, handler=emitting, sink=sink,
            )  # fmt: skip
        rows = conn.execute("SELECT topic, dedupe_id FROM oncepipe.outbox").fetchall()
    assert rows == [("events.click", str(derived.event_id))]
