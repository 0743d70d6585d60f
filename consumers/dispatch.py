"""One function per event type: ``EventHandlers``, itself a handler for ``--handler module:attr``.

::

    handlers = EventHandlers()

    @handlers.on(OrderPlaced)
    def keep_totals(events: Sequence[InboundEvent[OrderPlaced]], tx: HandlerContext) -> None: ...

A batch is split into runs of consecutive events of one type, in partition order, and each run
goes to its type's function: the order across types is kept (a run ends where another type
starts), and every function sees the same open transaction.

An event of a type with no function in the set is dead-lettered (``UnhandledEventTypeError``,
a ``PoisonError``: the batch's other events are applied) with a message naming the type and
the fix. Skipping it would commit its offset and lose it; a dead letter keeps its bytes, so
once a function is added, ``oncepipe dlq replay`` applies it.

Public names: ``EventHandlers``, ``TypedHandler``, ``UnhandledEventTypeError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias, TypeVar

from pydantic import BaseModel

from consumers.context import HandlerContext
from consumers.events import InboundEvent
from oncepipe.errors import ConfigError, PoisonError
from schemas import Event

__all__ = ["EventHandlers", "TypedHandler", "UnhandledEventTypeError"]

ModelT = TypeVar("ModelT", bound=Event)

TypedHandler: TypeAlias = Callable[[Sequence[InboundEvent[ModelT]], HandlerContext], None]
"""A function of one event type: its events (one run, in partition order) and the transaction."""

_AnyHandler = Callable[[Sequence[InboundEvent], HandlerContext], None]


class UnhandledEventTypeError(PoisonError):
    """An event's type has no function in the ``EventHandlers``: it is dead-lettered."""


def _type_name(event: BaseModel) -> str:
    name = getattr(event, "event_type", None)
    return name if isinstance(name, str) else type(event).__name__


class EventHandlers:
    """A set of handler functions, one per event type; call it like a handler."""

    def __init__(self) -> None:
        self._functions: dict[str, _AnyHandler] = {}

    def on(self, model: type[ModelT]) -> Callable[[TypedHandler[ModelT]], TypedHandler[ModelT]]:
        """Decorator: ``function`` handles the events of ``model``'s type."""
        name = getattr(model, "event_type", None)
        if not isinstance(model, type) or not issubclass(model, Event) or not name:
            raise ConfigError(f"EventHandlers.on({model!r}): give an event model (schemas.Event)")

        def add(function: TypedHandler[ModelT]) -> TypedHandler[ModelT]:
            other = self._functions.get(name)
            if other is not None and other is not function:
                raise ConfigError(
                    f"EventHandlers: {name} is handled by {_label(other)} already, then by "
                    f"{_label(function)}; one function per event type (call one from the other)"
                )
            # Stored for any event: __call__ hands it only runs of its own type.
            self._functions[name] = function  # type: ignore[assignment]
            return function

        return add

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types with a function, in the order they were added."""
        return tuple(self._functions)

    def __call__(self, events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        """Hand each run of consecutive events of one type to that type's function."""
        for name, run in _runs(events):
            function = self._functions.get(name)
            if function is None:
                raise UnhandledEventTypeError(
                    f"no handler function for event type {name}; this worker's EventHandlers "
                    f"handles {', '.join(self._functions) or 'no type'}: add "
                    f"`@handlers.on({name})` to it (or consume this topic with another "
                    "group), then `oncepipe dlq replay` the dead letters"
                )
            function(run, tx)

    def __repr__(self) -> str:
        return f"EventHandlers({', '.join(self._functions)})"


def _runs(events: Sequence[InboundEvent]) -> Iterator[tuple[str, Sequence[InboundEvent]]]:
    names = [_type_name(inbound.event) for inbound in events]
    start = 0
    for index in range(1, len(names) + 1):
        if index == len(names) or names[index] != names[start]:
            yield names[start], events[start:index]
            start = index


def _label(function: object) -> str:
    return str(getattr(function, "__qualname__", function))
