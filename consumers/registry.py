"""Handlers by name: ``--handler clicks`` or ``--handler package.module:attribute``.

A handler is a function ``handler(events, tx) -> None`` given the batch's NEW events (in
partition order) and the open transaction; whatever it writes commits with the offsets. The
attribute may also be an ``EventHandlers`` (one function per event type), itself a handler.
Importing the handler's module registers the event types it declares (``schemas.event_type``),
so the codec is built after ``resolve``.

Public names: ``Handler``, ``HANDLERS``, ``register``, ``resolve``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from consumers.context import HandlerContext
from consumers.dispatch import EventHandlers
from consumers.events import InboundEvent
from oncepipe.errors import ConfigError
from schemas import CatalogError

__all__ = ["HANDLERS", "Handler", "register", "resolve"]

Handler = Callable[[Sequence[InboundEvent], HandlerContext], None]

# Names map to import paths so that the registry does not import every handler up front.
HANDLERS: dict[str, str] = {"clicks": "consumers.handlers.clicks:handle_clicks"}
_REGISTERED: dict[str, Handler] = {}


def register(name: str) -> Callable[[Handler], Handler]:
    """Decorator: make a handler available by ``name``."""

    def add(handler: Handler) -> Handler:
        _REGISTERED[name] = handler
        return handler

    return add


def resolve(spec: str) -> Handler:
    """The handler named ``spec`` (a registered name or ``module:function``)."""
    if spec in _REGISTERED:
        return _REGISTERED[spec]
    path = HANDLERS.get(spec, spec)
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        known = ", ".join(sorted({*HANDLERS, *_REGISTERED}))
        raise ConfigError(
            f"unknown handler {spec!r}: use one of {known} or module:attribute (a function "
            "or an EventHandlers) "
            "(ONCEPIPE_CONSUMER_HANDLER / --handler)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"handler {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    except CatalogError as exc:  # its event types are refused: the code must change, not retry
        raise ConfigError(f"handler {spec!r}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if isinstance(handler, EventHandlers) and not handler.event_types:
        raise ConfigError(
            f"handler {spec!r}: the EventHandlers has no function; add one per event type "
            "with @handlers.on(Model)"
        )
    if not callable(handler):
        raise ConfigError(
            f"handler {spec!r}: {module_name} has no function or EventHandlers {attribute!r}"
        )
    return handler  # type: ignore[no-any-return]
