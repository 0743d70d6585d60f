"""Delayed retries that do not block: ``RetryLater`` moves an event to a due-time table.

A handler raises ``RetryLater(after=...)`` when a dependency said "not now" (a 503). The batch
isolates that event (as it isolates a failure), and in the same transaction moves it to
``oncepipe.consumer_retries`` with its tier and due time, and the partition's offset moves past
it: the other events of the partition are not delayed. Each worker takes the due events of its
partitions into its next batch (at most every ``retry_check_s``), where they are applied (the
inbox still guarantees one application), retried at the next tier, or, after the last tier,
dead-lettered with every attempt in its ``dlq.retry.attempts`` header.

A table, not retry topics: the move commits with the offset move in one PostgreSQL
transaction (no outbox hop, no extra topics, consumers or ACLs per tier), each event has its
own due time (a retry topic is only ordered by when events entered it), and with park-key the
event's key stays blocked through the same row locks as any other blocker.

Public names: ``RetryLater``, ``Retries``, ``Retrying``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from consumers.deadletters import DeadLetterCandidate
from consumers.decoding import Decoder, Rejected, StoredRow, stored_events
from consumers.events import Coordinates, InboundEvent, Key
from oncepipe.errors import OncepipeError

__all__ = ["RETRY_ATTEMPT", "Retries", "RetryLater", "Retrying"]

RETRY_ATTEMPT = "oncepipe.retry.attempt"
"""Header a handler sees on an event taken from the retry table: how many delays it waited."""


class RetryLater(OncepipeError):  # noqa: N818 - a request, not an error
    """Raised by a handler: apply this event again later, without holding its partition.

    ``after`` (seconds or a ``timedelta``) is the least delay the caller wants; the tier's
    delay applies when longer.
    """

    def __init__(self, reason: str = "retry later", *, after: float | timedelta = 0.0) -> None:
        super().__init__(reason)
        self.after_s = after.total_seconds() if isinstance(after, timedelta) else float(after)


@dataclass(frozen=True)
class Retrying:
    """An event taken from the retry table, with the attempts it made so far."""

    event: InboundEvent
    history: list[dict[str, Any]]


_TAKE = """
DELETE FROM oncepipe.consumer_retries AS r
WHERE (r.consumer_group, r.topic, r.partition, r."offset") IN (
    SELECT consumer_group, topic, partition, "offset" FROM oncepipe.consumer_retries
    WHERE consumer_group = %s AND due_at <= now()
      AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
    ORDER BY topic, partition, "offset"
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING topic, partition, "offset", key, event_id, value, header_names, header_values,
          timestamp_ms, history
"""

_NEXT_DUE = """
SELECT extract(epoch FROM min(due_at) - now()) FROM oncepipe.consumer_retries
WHERE consumer_group = %s AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
"""

_PUT = """
INSERT INTO oncepipe.consumer_retries (consumer_group, topic, partition, "offset", key,
    event_id, value, header_names, header_values, timestamp_ms, attempt, due_at, history)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s)
ON CONFLICT (consumer_group, topic, partition, "offset") DO UPDATE SET
    attempt = excluded.attempt, due_at = excluded.due_at, history = excluded.history
"""


class Retries:
    """The retry tiers of one worker: takes due events, and moves events that ask to wait."""

    def __init__(
        self, decoder: Decoder, tiers: Sequence[float], *, check_s: float = 1.0, limit: int = 500
    ) -> None:
        self._decoder = decoder
        self._tiers = tuple(tiers)
        self._check_s = check_s
        self._limit = limit
        self._next_check = 0.0
        self._next_due = 0.0
        self._owned: frozenset[Coordinates] = frozenset()
        self._taken: dict[Key, list[dict[str, Any]]] = {}

    def check_due(self, owned: Sequence[Coordinates]) -> bool:
        """True when the batch should look for due events of ``owned``.

        At most every ``check_s``, and only when something may be due: the worker learns the
        next due time of its partitions whenever it looks, and when it moves an event; a
        change of its partitions makes it look again.
        """
        now = time.monotonic()
        if frozenset(owned) != self._owned:
            self._owned = frozenset(owned)
            self._next_due = 0.0
        if now < self._next_check or now < self._next_due:
            return False
        self._next_check = now + self._check_s
        return True

    def look_next_time(self) -> None:
        """Let the next ``check_due`` look if something may be due (a batch is about to run)."""
        self._next_check = 0.0

    def take_due(
        self, cursor: psycopg.Cursor[Any], group: str, owned: Sequence[Coordinates]
    ) -> list[InboundEvent]:
        """The due events of ``owned`` partitions, removed from the table in this transaction."""
        self._taken = {}
        if not owned:
            return []
        partitions = ([t for t, _ in owned], [p for _, p in owned])
        rows = cursor.execute(_TAKE, (group, *partitions, self._limit)).fetchall()
        ahead = cursor.execute(_NEXT_DUE, (group, *partitions)).fetchone()
        wait_s = None if ahead is None or ahead[0] is None else max(0.0, float(ahead[0]))
        self._next_due = math.inf if wait_s is None else time.monotonic() + wait_s
        if not rows:
            return []
        stored = [
            StoredRow(
                topic=row[0], partition=int(row[1]), offset=int(row[2]),
                key=None if row[3] is None else bytes(row[3]), event_id=row[4], value=row[5],
                headers=(*zip(row[6], row[7], strict=True),
                         (RETRY_ATTEMPT, str(len(row[9])).encode())),
                timestamp_ms=row[8],
            )
            for row in rows
        ]  # fmt: skip
        events = stored_events(self._decoder, stored, what="an event waiting for a retry")
        for event, row in zip(events, rows, strict=True):
            self._taken[(event.topic, event.partition, event.offset)] = list(row[9])
        return events

    def move(
        self,
        cursor: psycopg.Cursor[Any],
        group: str,
        waiting: Sequence[tuple[InboundEvent, RetryLater]],
    ) -> list[DeadLetterCandidate]:
        """Move each event to its next tier; those past the last tier come back to dead-letter."""
        if not waiting:
            return []
        # The transaction's time, the one due_at counts from: attempts are then >= tier apart.
        row = cursor.execute("SELECT now()").fetchone()
        now = row[0] if row else datetime.now(UTC)
        out = []
        for event, request in waiting:
            history = self._taken.get((event.topic, event.partition, event.offset), [])
            attempt = len(history) + 1
            delay = (
                max(request.after_s, self._tiers[attempt - 1])
                if attempt <= len(self._tiers)
                else None
            )
            history = [
                *history,
                {"attempt": attempt, "failed_at": now.isoformat(), "delay_s": delay,
                 "error": str(request)[:200]},
            ]  # fmt: skip
            if delay is None:
                out.append(_dead_letter(event, request, history))
                continue
            self._next_due = min(self._next_due, time.monotonic() + delay)
            original = [(n, v) for n, v in event.headers if n != RETRY_ATTEMPT]
            cursor.execute(
                _PUT,
                (group, event.topic, event.partition, event.offset, event.key, event.event_id,
                 event.value, [n for n, _ in original],
                 [v.encode() if isinstance(v, str) else v for _, v in original],
                 event.timestamp_ms, attempt, delay, json.dumps(history)),
            )  # fmt: skip
        return out


def _dead_letter(
    event: InboundEvent, request: RetryLater, history: list[dict[str, Any]]
) -> DeadLetterCandidate:
    first = datetime.fromisoformat(history[0]["failed_at"])
    last = datetime.fromisoformat(history[-1]["failed_at"])
    original = tuple((n, v) for n, v in event.headers if n != RETRY_ATTEMPT)
    rejected = dataclasses.replace(Rejected.of_event(event, request), headers=original)
    return DeadLetterCandidate(rejected, len(history), first, last, json.dumps(history))
