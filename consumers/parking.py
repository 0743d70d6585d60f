"""Parking a poisoned key (``--on-poison park-key``): its later events wait, in order.

Once an event of key K is dead-lettered, that dead letter is K's *blocker* in the consumer
group (``oncepipe.parked_blockers``), and every later event of K read by the group is parked
(``oncepipe.parked_events``: its bytes, no inbox row, not applied) in the batch transaction
that reads it, while other keys keep flowing. Parking, blocking and releasing all happen in
the batch transaction, so they commit with the offset move or not at all.

Release, in original order and exactly once (the inbox still dedupes):
- the blocker's event comes back (``oncepipe dlq replay``) and is applied: the parked events
  of K are applied right after it, in the same transaction;
- the blocker was discarded (``oncepipe dlq discard``): the parked events are applied before
  the next event of K, or by the worker's idle check.
The blocker row is locked (``FOR UPDATE``) while a batch decides about its key, so two
workers (one a zombie) never interleave a release with a later event of the key.

A record without a key blocks nothing, and a record that did not decode is dead-lettered
even when its key is parked (it can never be applied as it is).

Public names: ``Blocker``, ``Parking``, ``Plan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from consumers.deadletters import DeadLetterCandidate
from consumers.decoding import Decoder, StoredRow, stored_events
from consumers.events import InboundEvent

__all__ = ["Blocker", "Parking", "Plan"]

KeyOf = tuple[str, bytes]
"""A (topic, key) pair: what a blocker blocks."""

_BLOCKERS = """
SELECT topic, key, partition, "offset", event_id, state
FROM oncepipe.parked_blockers
WHERE consumer_group = %s AND (topic, key) IN (SELECT * FROM unnest(%s::text[], %s::bytea[]))
ORDER BY topic, key
FOR UPDATE
"""

_DISCARDED = """
SELECT topic, key, partition, "offset", event_id, state
FROM oncepipe.parked_blockers
WHERE consumer_group = %s AND state = 'discarded'
  AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
ORDER BY topic, key
FOR UPDATE SKIP LOCKED
"""

_TAKE = """
DELETE FROM oncepipe.parked_events
WHERE consumer_group = %s AND topic = %s AND key = %s
RETURNING partition, "offset", event_id, value, header_names, header_values, timestamp_ms, seq
"""

_PARK = """
INSERT INTO oncepipe.parked_events (consumer_group, topic, partition, "offset", key, event_id,
    value, header_names, header_values, timestamp_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (consumer_group, topic, partition, "offset") DO NOTHING
"""

_BLOCK = """
INSERT INTO oncepipe.parked_blockers AS b
    (consumer_group, topic, key, partition, "offset", event_id)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (consumer_group, topic, key) DO UPDATE SET
    partition = excluded.partition, "offset" = excluded."offset", event_id = excluded.event_id,
    state = 'parked', blocked_at = now()
"""

_UNBLOCK = (
    "DELETE FROM oncepipe.parked_blockers WHERE consumer_group = %s AND topic = %s AND key = %s"
)


@dataclass(frozen=True)
class Blocker:
    """The dead-lettered record that blocks a key."""

    topic: str
    key: bytes
    partition: int
    offset: int
    event_id: str | None
    state: str


@dataclass
class Plan:
    """What a batch does with its events under park-key."""

    todo: list[InboundEvent] = field(default_factory=list)
    """Events to apply, in order; released parked events sit right after what releases them."""
    parked: list[InboundEvent] = field(default_factory=list)
    released: list[KeyOf] = field(default_factory=list)
    released_events: int = 0


def _key(event: InboundEvent) -> KeyOf | None:
    return None if event.key is None else (event.topic, event.key)


class Parking:
    """Parks and releases the events of blocked keys, on the batch transaction's cursor."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder

    def plan(
        self,
        cursor: psycopg.Cursor[Any],
        group: str,
        events: Sequence[InboundEvent],
        owned: Sequence[tuple[str, int]],
        dead_before: Sequence[DeadLetterCandidate] = (),
    ) -> Plan:
        """Split ``events`` (partition order) into events to apply and events to park.

        ``dead_before`` are records of this batch already dead-lettered (those that did not
        decode): the later events of their keys are parked too.
        """
        blockers = self._blockers(cursor, group, events)
        for found in self._discarded(cursor, group, owned):
            blockers.setdefault((found.topic, found.key), found)
        first_dead: dict[KeyOf, tuple[int, int]] = {}
        for candidate in dead_before:
            record = candidate.rejected
            if record.key is not None:
                where = (record.partition, record.offset)
                first_dead[(record.topic, record.key)] = min(
                    where, first_dead.get((record.topic, record.key), where)
                )
        plan = Plan()
        # Discarded blockers release at once, before anything else of their key.
        for discarded in [b for b in blockers.values() if b.state == "discarded"]:
            self._release(cursor, group, discarded, plan)
            del blockers[(discarded.topic, discarded.key)]
        for event in events:
            key = _key(event)
            blocker: Blocker | None = None if key is None else blockers.get(key)
            dead = None if key is None else first_dead.get(key)
            if dead is not None and (event.partition, event.offset) > dead:
                plan.parked.append(event)
            elif blocker is None:
                plan.todo.append(event)
            elif blocker.event_id is not None and blocker.event_id == str(event.event_id):
                # The blocker came back (replayed): it goes first, then what waited for it.
                plan.todo.append(event)
                self._release(cursor, group, blocker, plan)
                del blockers[(blocker.topic, blocker.key)]
            else:
                plan.parked.append(event)
        return plan

    def _release(
        self, cursor: psycopg.Cursor[Any], group: str, blocker: Blocker, plan: Plan
    ) -> None:
        cursor.execute(_UNBLOCK, (group, blocker.topic, blocker.key))
        rows = sorted(cursor.execute(_TAKE, (group, blocker.topic, blocker.key)).fetchall(),
                      key=lambda row: row[7])  # fmt: skip
        plan.released.append((blocker.topic, blocker.key))
        if not rows:
            return
        stored = [
            StoredRow(
                topic=blocker.topic, partition=int(row[0]), offset=int(row[1]), key=blocker.key,
                event_id=row[2], value=row[3], headers=tuple(zip(row[4], row[5], strict=True)),
                timestamp_ms=row[6],
            )
            for row in rows
        ]  # fmt: skip
        plan.todo.extend(stored_events(self._decoder, stored, what="a parked event"))
        plan.released_events += len(stored)

    def _blockers(
        self, cursor: psycopg.Cursor[Any], group: str, events: Sequence[InboundEvent]
    ) -> dict[KeyOf, Blocker]:
        keys = sorted({k for k in map(_key, events) if k is not None})
        if not keys:
            return {}
        rows = cursor.execute(
            _BLOCKERS, (group, [t for t, _ in keys], [k for _, k in keys])
        ).fetchall()
        return {(row[0], bytes(row[1])): _blocker(row) for row in rows}

    def _discarded(
        self, cursor: psycopg.Cursor[Any], group: str, owned: Sequence[tuple[str, int]]
    ) -> list[Blocker]:
        if not owned:
            return []
        rows = cursor.execute(
            _DISCARDED, (group, [t for t, _ in owned], [p for _, p in owned])
        ).fetchall()
        return [_blocker(row) for row in rows]

    def park(
        self,
        cursor: psycopg.Cursor[Any],
        group: str,
        parked: Sequence[InboundEvent],
        dead_letters: Sequence[DeadLetterCandidate],
        deferred: Sequence[InboundEvent] = (),
    ) -> None:
        """Block the keys of ``dead_letters`` and ``deferred``; park ``parked``.

        A deferred event (waiting for a delayed retry) blocks its key until it is applied.
        """
        blocking = [(r.topic, r.key, r.partition, r.offset, r.event_id)
                    for r in (c.rejected for c in dead_letters)]  # fmt: skip
        blocking += [(e.topic, e.key, e.partition, e.offset, str(e.event_id)) for e in deferred]
        for topic, key, partition, offset, event_id in blocking:
            if key is not None:
                cursor.execute(_BLOCK, (group, topic, key, partition, offset, event_id))
        for event in parked:
            names = [name for name, _ in event.headers]
            values = [
                value.encode() if isinstance(value, str) else value for _, value in event.headers
            ]
            cursor.execute(
                _PARK,
                (group, event.topic, event.partition, event.offset, event.key, event.event_id,
                 event.value, names, values, event.timestamp_ms),
            )  # fmt: skip


def _blocker(row: Sequence[Any]) -> Blocker:
    return Blocker(row[0], bytes(row[1]), int(row[2]), int(row[3]), row[4], row[5])
