"""EventHandlers: one function per event type, runs in partition order, unhandled types refused.

The functions below are annotated as a user writes them (``InboundEvent[ClickEvent]``,
``InboundEvent[OrderPlaced]``) and ``make lint`` type-checks this file: the typed API is
checked by mypy --strict here, not only at run time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel

from consumers import (
    EventHandlers,
    HandlerContext,
    InboundEvent,
    UnhandledEventTypeError,
    outbox_sink,
    resolve,
)
from oncepipe.errors import ConfigError, PoisonError
from schemas import ClickAction, ClickEvent, Codec, Event, UtcMillis

AT = datetime(2026, 1, 1, tzinfo=UTC)
CONTEXT = HandlerContext(connection=None, cursor=None, consumer_group="g")  # type: ignore[arg-type]


class OrderPlaced(Event):
    """A model used without registration: dispatch goes by ``event_type``, not the codec."""

    event_type: ClassVar[str] = "OrderPlaced"
    key_field: ClassVar[str] = "customer_id"
    order_id: str
    customer_id: str
    amount_cents: int
    placed_at: UtcMillis


def click(user: str) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=user,
        item_id="i",
        action=ClickAction.VIEW,
        occurred_at=AT,
        session_id="s",
    )


def order(order_id: str) -> OrderPlaced:
    return OrderPlaced(
        event_id=uuid.uuid4(), order_id=order_id, customer_id="c", amount_cents=1, placed_at=AT
    )


def inbound(event: BaseModel, offset: int) -> InboundEvent:
    event_id = getattr(event, "event_id", uuid.uuid4())
    return InboundEvent(event=event, event_id=event_id, topic="t", partition=0, offset=offset)


calls: list[tuple[str, list[int]]] = []
handlers = EventHandlers()


@handlers.on(ClickEvent)
def on_clicks(events: Sequence[InboundEvent[ClickEvent]], tx: HandlerContext) -> None:
    calls.append(("clicks", [e.offset for e in events]))
    assert all(e.event.user_id for e in events)  # typed: ClickEvent has user_id


@handlers.on(OrderPlaced)
def on_orders(events: Sequence[InboundEvent[OrderPlaced]], tx: HandlerContext) -> None:
    calls.append(("orders", [e.offset for e in events]))
    assert all(e.event.amount_cents >= 0 for e in events)  # typed: OrderPlaced


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    calls.clear()


def test_runs_of_one_type_go_to_its_function_in_partition_order() -> None:
    batch = [
        inbound(click("a"), 0),
        inbound(click("b"), 1),
        inbound(order("o1"), 2),
        inbound(click("c"), 3),
        inbound(order("o2"), 4),
        inbound(order("o3"), 5),
    ]
    handlers(batch, CONTEXT)
    assert calls == [
        ("clicks", [0, 1]),
        ("orders", [2]),
        ("clicks", [3]),
        ("orders", [4, 5]),
    ]


def test_an_empty_batch_calls_nothing() -> None:
    handlers([], CONTEXT)
    assert calls == []


def test_an_event_of_a_type_without_a_function_is_poison_naming_the_type_and_the_fix() -> None:
    only_clicks = EventHandlers()
    only_clicks.on(ClickEvent)(on_clicks)
    with pytest.raises(UnhandledEventTypeError) as caught:
        only_clicks([inbound(click("a"), 0), inbound(order("o"), 1)], CONTEXT)
    assert isinstance(caught.value, PoisonError)  # dead-lettered, its neighbours applied
    message = str(caught.value)
    assert "no handler function for event type OrderPlaced" in message
    assert "handles ClickEvent" in message
    assert "@handlers.on(OrderPlaced)" in message
    assert "oncepipe dlq replay" in message


def test_two_functions_for_one_type_are_refused() -> None:
    twice = EventHandlers()
    twice.on(ClickEvent)(on_clicks)
    twice.on(ClickEvent)(on_clicks)  # the same function again: a re-import, harmless
    with pytest.raises(ConfigError, match=r"ClickEvent is handled by on_clicks already"):
        twice.on(ClickEvent)(on_orders)  # type: ignore[arg-type]


def test_on_takes_only_event_models() -> None:
    with pytest.raises(ConfigError, match=r"give an event model"):
        EventHandlers().on(BaseModel)  # type: ignore[type-var]


def test_an_event_handlers_instance_resolves_as_the_handler() -> None:
    assert resolve("tests.unit.test_event_handlers:handlers") is handlers
    assert handlers.event_types == ("ClickEvent", "OrderPlaced")


empty = EventHandlers()


def test_an_event_handlers_without_functions_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"the EventHandlers has no function"):
        resolve("tests.unit.test_event_handlers:empty")


class Unregistered(Event):
    event_type: ClassVar[str] = "Unregistered"
    key_field: ClassVar[str] = "event_id"


def test_emitting_a_type_the_codec_does_not_know_stops_the_worker_naming_the_fix() -> None:
    sink = outbox_sink(Codec.load())
    with pytest.raises(ConfigError, match=r"tx\.emit\(Unregistered\): .*@schemas\.event_type"):
        sink(None, Unregistered(event_id=uuid.uuid4()))  # type: ignore[arg-type]
