"""Log lines about a record carry its coordinates, the handler's own lines included.

While a handler runs, the consumer group is bound to every line (structlog's contextvars);
while it iterates over its events, the event at hand is ``oncepipe.logging.current_record``,
so a line logged in the loop's body names that event's topic, partition, offset and event_id.

Public names: ``handler_scope``, ``RecordScope``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import overload

import structlog

from consumers.events import InboundEvent
from oncepipe.logging import current_record

__all__ = ["RecordScope", "handler_scope"]


class RecordScope(Sequence[InboundEvent]):
    """The events handed to a handler; iterating makes each one the current record in turn."""

    __slots__ = ("_events",)

    def __init__(self, events: Sequence[InboundEvent]) -> None:
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> InboundEvent: ...

    @overload
    def __getitem__(self, index: slice) -> RecordScope: ...

    def __getitem__(self, index: int | slice) -> InboundEvent | RecordScope:
        if isinstance(index, slice):
            return RecordScope(self._events[index])
        return self._events[index]

    def __iter__(self) -> Iterator[InboundEvent]:
        # No token reset here: an abandoned iterator is finalised in any context; the
        # enclosing ``handler_scope`` restores the variable when the handler returns.
        previous = current_record.get()
        for event in self._events:
            current_record.set(event)
            yield event
        current_record.set(previous)

    def __repr__(self) -> str:
        return f"RecordScope({self._events!r})"


@contextmanager
def handler_scope(group: str, events: Sequence[InboundEvent]) -> Iterator[RecordScope]:
    """Around one handler call: the group on every line, the current event while iterating.

    A call with one event (a batch of one, or the isolation of a failing event) makes it
    current for the whole call.
    """
    token = current_record.set(events[0] if len(events) == 1 else None)
    with structlog.contextvars.bound_contextvars(consumer_group=group):
        try:
            yield RecordScope(events)
        finally:
            current_record.reset(token)
