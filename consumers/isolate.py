"""Finding the events a handler fails on, inside the batch transaction, by bisection.

Once the handler failed on a batch's events, the batch is run again in halves, each under a
savepoint (inbox rows, handler writes and emitted events together): a half that succeeds
stays applied, a half that fails is rolled back to its savepoint and halved again, and a
single event that fails gets a verdict (dead-lettered, or its partition held). Halves run in
partition order, so the events applied before a held event are exactly those below it.
One poison event in n costs about 2·log2(n) handler calls; a batch without failures never
comes here.

Public names: ``Isolated``, ``isolate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from consumers import inbox
from consumers.classify import is_transient
from consumers.context import HandlerContext, OutboxSink
from consumers.deadletters import DeadLetterCandidate
from consumers.decoding import Rejected
from consumers.events import Coordinates, InboundEvent
from consumers.logcontext import handler_scope
from consumers.registry import Handler
from consumers.retries import RetryLater
from consumers.retry_policy import RetryPolicy, Verdicts

__all__ = ["Isolated", "isolate"]

_SAVEPOINT = "oncepipe_isolate"


@dataclass
class Isolated:
    """What the bisection applied, and the verdicts on what failed."""

    applied: list[InboundEvent] = field(default_factory=list)
    emitted: int = 0
    verdicts: Verdicts = field(default_factory=Verdicts)


@dataclass
class _Run:
    conn: psycopg.Connection[Any]
    cursor: psycopg.Cursor[Any]
    group: str
    handler: Handler
    sink: OutboxSink | None
    policy: RetryPolicy
    out: Isolated
    park_key: bool = False
    positions: Mapping[Coordinates, int | None] = field(default_factory=dict)

    def out_of_band(self, event: InboundEvent) -> bool:
        """A delayed retry or a released parked event: below its partition's position."""
        position = self.positions.get(event.coordinates)
        return position is not None and event.offset < position

    def pending(self, events: Sequence[InboundEvent]) -> list[InboundEvent]:
        held = self.out.verdicts
        # With park-key, a key dead-lettered so far (earlier in partition order) is parked.
        dead = held.blocked_keys() if self.park_key else set()
        return [
            e
            for e in events
            if not held.beyond_hold(e.coordinates, e.offset)
            and (e.key is None or (e.topic, e.key) not in dead)
        ]

    def attempt(self, events: list[InboundEvent]) -> Exception | None:
        """Apply ``events`` under a savepoint; the error if it failed (and was rolled back)."""
        self.cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            new = inbox.claim_new(self.cursor, self.group, events)
            context = HandlerContext(self.conn, self.cursor, self.group, self.sink)
            if new:
                with handler_scope(self.group, new) as scoped:
                    self.handler(scoped, context)
            emitted = context.flush_emitted()
        except Exception as exc:
            if is_transient(exc) or self.conn.broken:
                raise
            self.cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            return exc
        self.cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        self.out.applied += new
        self.out.emitted += emitted
        return None

    def bisect(self, events: list[InboundEvent], error: Exception) -> None:
        """``events`` failed together with ``error``: find which of them fail on their own."""
        if len(events) == 1 and isinstance(error, RetryLater):
            self.out.verdicts.retry_later.append((events[0], error))
            return
        if len(events) == 1 and self.out_of_band(events[0]):
            # It waited already, and its partition moved on: holding cannot apply to it.
            now = datetime.now(UTC)
            rejected = Rejected.of_event(events[0], error)
            self.out.verdicts.to_dead_letter.append(DeadLetterCandidate(rejected, 1, now, now))
            return
        if len(events) == 1:
            verdict = self.policy.decide([Rejected.of_event(events[0], error)])
            self.out.verdicts.merge(verdict)
            return
        middle = len(events) // 2
        for half in (events[:middle], events[middle:]):
            todo = self.pending(half)
            if not todo:
                continue
            failed = self.attempt(todo)
            if failed is not None:
                self.bisect(todo, failed)


def isolate(
    conn: psycopg.Connection[Any],
    cursor: psycopg.Cursor[Any],
    *,
    group: str,
    events: Sequence[InboundEvent],
    error: Exception,
    handler: Handler,
    sink: OutboxSink | None,
    policy: RetryPolicy,
    park_key: bool = False,
    positions: Mapping[Coordinates, int | None] | None = None,
) -> Isolated:
    """Apply ``events`` (which failed together with ``error``) around the ones that fail.

    Must run in a fresh transaction: the one that failed was rolled back. Transient and
    fatal errors are raised, and the caller rolls everything back. With ``park_key`` the
    events of a key after its dead-lettered event are left out (the caller parks them). An
    event below its partition's position in ``positions`` (a delayed retry, a released parked
    event) that fails is dead-lettered at once: holding its partition cannot retry it.
    """
    run = _Run(
        conn, cursor, group, handler, sink, policy, Isolated(), park_key, dict(positions or {})
    )
    run.bisect(list(events), error)
    return run.out
