"""The handler's view of the batch transaction: the open connection and ``emit``.

Public names: ``HandlerContext``, ``OutboxSink``, ``outbox_sink``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from opentelemetry.context import Context
from opentelemetry.trace import Span
from pydantic import BaseModel

from consumers.events import InboundEvent
from oncepipe import tracing
from oncepipe.errors import ConfigError
from oncepipe.logging import current_record
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
    spans: Mapping[tuple[str, int, int], Span] = field(default_factory=dict)
    """The handler span of each new event, by (topic, partition, offset) (none without an SDK)."""
    _traces: list[Context | None] = field(default_factory=list, init=False, repr=False)

    def emit(self, event: BaseModel) -> None:
        """Queue a derived event; it reaches the outbox in this batch's transaction.

        It continues the trace of the event being handled (the current one while the handler
        iterates over its events, or the only one): its handler span, else its own context.
        """
        if self.sink is None:
            raise ConfigError(
                "a handler emitted a derived event but this worker has no outbox sink; "
                "give the runtime one (consumers.context.outbox_sink)"
            )
        self.emitted.append(event)
        source = current_record.get()
        if isinstance(source, InboundEvent):
            span = self.spans.get((source.topic, source.partition, source.offset))
            self._traces.append(tracing.context_of(span, source.headers))
        else:
            self._traces.append(None)  # the caller's current context: the batch span's

    def flush_emitted(self) -> int:
        """Write the queued derived events to the outbox; return how many were queued."""
        if self.sink is not None:
            for event, trace in zip(self.emitted, self._traces, strict=True):
                with tracing.attached(trace):
                    self.sink(self.connection, event)
        count = len(self.emitted)
        self.emitted.clear()
        self._traces.clear()
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
