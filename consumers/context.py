"""The handler's view of the batch transaction: the open connection and ``emit``.

Public names: ``HandlerContext``, ``OutboxSink``, ``outbox_sink``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pydantic import BaseModel

from oncepipe.errors import ConfigError
from producers import enqueue
from schemas import Codec

__all__ = ["HandlerContext", "OutboxSink", "outbox_sink"]

OutboxSink = Callable[["psycopg.Connection[Any]", BaseModel], object]
"""Writes one derived event into the outbox, in the given connection's open transaction."""


@dataclass
class HandlerContext:
    """The open batch transaction; whatever is written through it commits with the offsets."""

    connection: psycopg.Connection[Any]
    cursor: psycopg.Cursor[Any]
    consumer_group: str
    sink: OutboxSink | None = None
    emitted: list[BaseModel] = field(default_factory=list)

    def emit(self, event: BaseModel) -> None:
        """Queue a derived event; it reaches the outbox in this batch's transaction."""
        if self.sink is None:
            raise ConfigError(
                "a handler emitted a derived event but this worker has no outbox sink; "
                "give the runtime one (consumers.context.outbox_sink)"
            )
        self.emitted.append(event)

    def flush_emitted(self) -> int:
        """Write the queued derived events to the outbox; return how many were queued."""
        if self.sink is not None:
            for event in self.emitted:
                self.sink(self.connection, event)
        count = len(self.emitted)
        self.emitted.clear()
        return count


def outbox_sink(codec: Codec) -> OutboxSink:
    """Derived events go to ``events.<name>`` through the transactional outbox."""

    def write(connection: psycopg.Connection[Any], event: BaseModel) -> object:
        # Deduplicated by (topic, event_id): a handler re-run after a rollback adds nothing.
        try:
            return enqueue(connection, event, codec=codec)
        except TypeError as exc:
            # A type the codec does not know is a bug in the handler's code, not in the record:
            # the worker stops with its offsets unchanged instead of dead-lettering the input.
            raise ConfigError(f"tx.emit({type(event).__name__}): {exc}") from exc

    return write
