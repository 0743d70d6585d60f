"""One batch, one PostgreSQL transaction: the heart of exactly-once effects.

Public names: ``BatchResult``, ``apply_batch``, ``plan_moves``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from consumers import inbox, offsets
from consumers.classify import Kind, classify
from consumers.context import HandlerContext, OutboxSink
from consumers.deadletters import DeadLetterCandidate, enqueue_dead_letters
from consumers.decoding import Rejected
from consumers.events import Coordinates, InboundEvent
from consumers.failures import forget_below
from consumers.isolate import isolate
from consumers.logcontext import handler_scope
from consumers.offsets import OffsetMove
from consumers.parking import Parking
from consumers.registry import Handler
from consumers.retries import Retries, RetryLater
from consumers.retry_policy import RetryPolicy, Verdicts, default_retry_policy
from oncepipe import tracing
from oncepipe.db import wrap_as_unavailable
from oncepipe.errors import RetriableError, first_line
from oncepipe.hooks import (
    NO_HOOKS,
    BatchCommitted,
    BatchStarted,
    Hooks,
    PartitionFreshness,
    RecordDeadLettered,
)
from oncepipe.logging import get_logger
from oncepipe.settings import Settings

__all__ = ["BatchResult", "apply_batch", "plan_moves"]


@dataclass(frozen=True)
class BatchResult:
    """What a committed batch did."""

    events: int
    applied: int
    duplicates: int
    emitted: int
    moves: tuple[OffsetMove, ...]
    dead_letters: int = 0
    held: Mapping[Coordinates, int] = field(default_factory=dict)
    """Partitions stopped at a record that may still succeed: offset to retry from."""
    parked: int = 0
    """Events parked behind a dead-lettered event of their key (park-key)."""
    released: int = 0
    """Parked events applied in this batch, their blocker replayed or discarded."""
    retrying: int = 0
    """Events moved to a retry tier (``RetryLater``)."""


def plan_moves(
    last: Mapping[Coordinates, int],
    positions: Mapping[Coordinates, int | None],
    held: Mapping[Coordinates, int] | None = None,
) -> tuple[OffsetMove, ...]:
    """Per partition: from its stored offset to one past its last record, or to its hold."""
    moves = []
    for (topic, partition), offset in sorted(last.items()):
        expected = positions[(topic, partition)]
        target = (held or {}).get((topic, partition), offset + 1)
        if target != expected:
            moves.append(OffsetMove(topic, partition, expected, target))
    return tuple(moves)


def _last_offsets(
    events: Sequence[InboundEvent], rejected: Sequence[Rejected]
) -> dict[Coordinates, int]:
    last: dict[Coordinates, int] = {}
    for where, offset in [(e.coordinates, e.offset) for e in events] + [
        (r.coordinates, r.offset) for r in rejected
    ]:
        last[where] = max(offset, last.get(where, -1))
    return last


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        # A broken connection cannot roll back; the server already discarded the transaction
        # and the runtime reconnects before the next batch.
        conn.close()


def _batch_failure(exc: psycopg.Error) -> str:
    return f"PostgreSQL failed during a batch ({exc.sqlstate or 'connection'}): {first_line(exc)}"


@contextmanager
def _transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Roll the batch back on any error; PostgreSQL's transient ones become ``RetriableError``."""
    try:
        with wrap_as_unavailable(_batch_failure, catch=(psycopg.OperationalError,)):
            try:
                yield
            except psycopg.errors.TransactionRollback as exc:  # serialization failure, deadlock
                raise RetriableError(
                    f"batch transaction aborted ({exc.sqlstate}: {type(exc).__name__}); retrying"
                ) from exc
    except BaseException:
        _rollback(conn)
        raise


def apply_batch(
    conn: psycopg.Connection[Any],
    *,
    settings: Settings,
    group: str,
    events: Sequence[InboundEvent],
    positions: Mapping[Coordinates, int | None],
    handler: Handler,
    policy: RetryPolicy | None = None,
    rejected: Sequence[Rejected] = (),
    sink: OutboxSink | None = None,
    hooks: Hooks = NO_HOOKS,
    parking: Parking | None = None,
    retries: Retries | None = None,
    before_commit: Callable[[], None] | None = None,
) -> BatchResult:
    """Apply ``events`` (partition order), dead-letter poison, move offsets, in one transaction.

    1. Verdicts on the records that did not decode (``rejected``): poison is dead-lettered,
       a schema not registered yet holds its partition (see ``consumers.retry_policy``).
    2. Inbox rows for every event, ON CONFLICT DO NOTHING: the rows inserted are the NEW
       events; the others were applied before (upstream retry, redelivery, zombie).
    3. The handler, with the NEW events only, on the same transaction. If it fails for a
       non-transient reason, the transaction is rolled back and steps 2-3 run again by
       bisection under savepoints (``consumers.isolate``), around the events that fail.
    4. Derived events the handler emitted go into the outbox, same transaction.
    5. Dead letters into the outbox, same transaction (``consumers.deadletters``); no inbox row.
    6. Offsets: a compare-and-set from ``positions`` (what this worker loaded from PostgreSQL)
       to one past each partition's last record, or to its held record; a mismatch raises
       ``FencedError``. The failure counts of records passed are deleted.
    7. COMMIT. Effects, dedupe records, dead letters and offsets become visible together or
       not at all.

    On any error the transaction is rolled back and the error re-raised; PostgreSQL's
    transient failures come back as ``RetriableError``. Without a ``policy``, one with the
    default policy is made (its failure-log connection opens only if something fails).
    ``hooks`` hear of the batch before it starts and after it committed, and carry the crash
    points ``consumer.before_handler``, ``after_handler`` and ``after_dead_letter``.

    With ``parking`` (``--on-poison park-key``), events of a key whose earlier event was
    dead-lettered are parked instead of applied, and released ones applied in their place
    (``consumers.parking``). With ``retries``, the due events of the partitions in
    ``positions`` join the batch, and events whose handler raised ``RetryLater`` move to their
    next tier (``consumers.retries``). ``before_commit`` runs last before the offsets and
    COMMIT are sent (the crash-loop attempt record's reply is read there); raising rolls back.
    """
    # A batch of no records (a worker looking for due retries and released parked events when
    # idle) is heard of only if it applied something, and then after its commit.
    heard = hooks
    if not events and not rejected:
        hooks = NO_HOOKS
    hooks.batch_started(BatchStarted(group, len(events)))
    policy = policy or default_retry_policy(settings, group, hooks)
    last = _last_offsets(events, rejected)
    with _transaction(conn):
        verdicts = policy.decide(rejected)
        ready = [e for e in events if not verdicts.beyond_hold(e.coordinates, e.offset)]
        plan: list[Any] = []  # the parking plan of the current try of the transaction
        take_due = retries is not None and retries.check_due(list(positions))

        def prepare() -> list[InboundEvent]:
            """The events to apply; runs again when the transaction starts over."""
            with conn.cursor() as cursor:
                due = (
                    retries.take_due(cursor, group, list(positions))
                    if retries is not None and take_due
                    else []
                )
                if parking is None:
                    return [*due, *ready]
                plan[:] = [parking.plan(cursor, group, [*due, *ready], list(positions),
                                        verdicts.to_dead_letter)]  # fmt: skip
            return list(plan[0].todo)

        todo, applied, emitted = _apply(
            conn, group=group, prepare=prepare, handler=handler, sink=sink, policy=policy,
            verdicts=verdicts, hooks=hooks, park_key=parking is not None, positions=positions,
        )  # fmt: skip
        parked: list[InboundEvent] = []
        with conn.cursor() as cursor:
            if retries is not None and verdicts.retry_later:
                waiting = [(e, r) for e, r in verdicts.retry_later if isinstance(r, RetryLater)]
                verdicts.to_dead_letter += retries.move(cursor, group, waiting)
            to_dead_letter = verdicts.to_dead_letter
            if to_dead_letter:
                enqueue_dead_letters(conn, group, to_dead_letter, _log(group))
                hooks.point("consumer.after_dead_letter")
            if parking is not None:
                parked = plan[0].parked + _parked_late(todo, applied, verdicts)
                deferred = [e for e, _ in verdicts.retry_later]
                parking.park(cursor, group, parked, to_dead_letter, deferred)
            moves = plan_moves(last, positions, verdicts.held)
            if before_commit is not None:
                before_commit()
            # One round trip for the rest (pipeline mode): the compare-and-set raises when
            # fenced, which aborts the transaction, so the COMMIT queued behind it cannot commit
            # a fenced batch. COMMIT as a statement: conn.commit() would sync once more.
            with offsets.fenced_errors(group, moves), conn.pipeline():
                forget_below(cursor, group, moves)
                offsets.compare_and_set(cursor, group, moves)
                hooks.point("consumer.after_handler")
                cursor.execute("COMMIT")
    aside = {(e.topic, e.partition, e.offset) for e in parked} | {
        (e.topic, e.partition, e.offset) for e, _ in verdicts.retry_later
    }
    passed = [
        e
        for e in todo
        if verdicts.passes(e.coordinates, e.offset)
        and (e.topic, e.partition, e.offset) not in aside
    ]
    dead = {(c.rejected.topic, c.rejected.partition, c.rejected.offset) for c in to_dead_letter}
    failed = sum(1 for e in passed if (e.topic, e.partition, e.offset) in dead)
    result = BatchResult(
        events=len(passed),
        applied=len(applied),
        duplicates=len(passed) - len(applied) - failed,
        emitted=emitted,
        moves=moves,
        dead_letters=len(to_dead_letter),
        held=dict(verdicts.held),
        parked=len(parked),
        released=plan[0].released_events if plan else 0,
        retrying=len(aside) - len(parked),
    )
    if hooks is not heard and (passed or to_dead_letter):
        hooks = heard
        hooks.batch_started(BatchStarted(group, len(passed)))
    _tell(hooks, group, result, passed=passed, dead_letters=to_dead_letter, applied=applied)
    return result


def _tell(
    hooks: Hooks,
    group: str,
    result: BatchResult,
    *,
    passed: Sequence[InboundEvent],
    dead_letters: Sequence[DeadLetterCandidate],
    applied: Sequence[InboundEvent],
) -> None:
    """After COMMIT: a DEBUG line per record, each dead letter's hook, then the batch's."""
    log = _log(group)
    if log.is_enabled_for(logging.DEBUG):
        # By place, not by id: a batch may hold an event and its duplicate.
        new = {(e.topic, e.partition, e.offset) for e in applied}
        dead = {(c.rejected.topic, c.rejected.partition, c.rejected.offset) for c in dead_letters}
        for event in passed:
            if (event.topic, event.partition, event.offset) in dead:
                continue  # logged as dead_lettered below
            outcome = (
                "applied" if (event.topic, event.partition, event.offset) in new else "duplicate"
            )
            log.debug("record " + outcome, **event.log_fields())
    for candidate in dead_letters:
        record = candidate.rejected
        log.debug(
            "record dead_lettered", topic=record.topic, partition=record.partition,
            offset=record.offset, event_id=record.event_id, stage=record.stage,
        )  # fmt: skip
        hooks.record_dead_lettered(
            RecordDeadLettered(
                group, record.topic, record.partition, record.offset, candidate.attempts,
                type(record.error).__name__, record.stage,
            )
        )  # fmt: skip
    hooks.batch_committed(
        BatchCommitted(
            group, result.events, result.applied, result.duplicates, result.emitted,
            result.dead_letters, len(result.held), tuple(e.event_id for e in passed),
            () if hooks is NO_HOOKS else _freshness(applied),
        )
    )  # fmt: skip


def _freshness(applied: Sequence[InboundEvent]) -> tuple[PartitionFreshness, ...]:
    """The newest applied event of each partition and when it was produced."""
    last: dict[Coordinates, InboundEvent] = {}
    for event in applied:
        last[event.coordinates] = event
    out = []
    for (topic, partition), event in last.items():
        produced = _produced_at(event)
        if produced is not None:
            out.append(PartitionFreshness(topic, partition, produced))
    return tuple(out)


def _produced_at(event: InboundEvent) -> float | None:
    """Unix seconds from the ``produced_at`` header, else the record's Kafka timestamp."""
    for name, value in event.headers:
        if name == "produced_at" and value is not None:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            try:
                return datetime.fromisoformat(text).timestamp()
            except ValueError:
                break
    return event.timestamp_ms / 1000 if event.timestamp_ms is not None else None


def _log(group: str) -> Any:
    return get_logger("consumer", consumer_group=group)


def _parked_late(
    todo: Sequence[InboundEvent], applied: Sequence[InboundEvent], verdicts: Verdicts
) -> list[InboundEvent]:
    """Events the bisection held back because an earlier event of their key was dead-lettered."""
    index = {(e.topic, e.partition, e.offset): n for n, e in enumerate(todo)}
    first_dead: dict[tuple[str, bytes], int] = {}
    given_up = [(c.rejected.topic, c.rejected.partition, c.rejected.offset, c.rejected.key)
                for c in verdicts.to_dead_letter]  # fmt: skip
    given_up += [(e.topic, e.partition, e.offset, e.key) for e, _ in verdicts.retry_later]
    for topic, partition, offset, record_key in given_up:
        where = index.get((topic, partition, offset))
        if record_key is not None and where is not None:
            key = (topic, record_key)
            first_dead[key] = min(where, first_dead.get(key, where))
    done = {(e.topic, e.partition, e.offset) for e in applied}
    done |= {(e.topic, e.partition, e.offset) for e, _ in verdicts.retry_later}
    late = []
    for n, event in enumerate(todo):
        first = None if event.key is None else first_dead.get((event.topic, event.key))
        if (
            first is not None
            and n > first
            and (event.topic, event.partition, event.offset) not in done
            and not verdicts.beyond_hold(event.coordinates, event.offset)
        ):
            late.append(event)
    return late


def _apply(
    conn: psycopg.Connection[Any],
    *,
    group: str,
    prepare: Callable[[], list[InboundEvent]],
    handler: Handler,
    sink: OutboxSink | None,
    policy: RetryPolicy,
    verdicts: Verdicts,
    hooks: Hooks,
    park_key: bool = False,
    positions: Mapping[Coordinates, int | None] | None = None,
) -> tuple[list[InboundEvent], list[InboundEvent], int]:
    """Steps 2-4: the fast path, or the bisection after a failure attributable to events.

    Returns the events tried, those applied, and how many events the handler emitted.
    """
    events = prepare()
    with conn.cursor() as cursor:
        new = inbox.claim_new(cursor, group, events)
        hooks.point("consumer.before_handler")
        context = HandlerContext(conn, cursor, group, sink)
        try:
            if new:
                with (
                    tracing.handler_spans(group, new) as context.spans,
                    handler_scope(group, new) as scoped,
                ):
                    handler(scoped, context)
            return events, new, context.flush_emitted()
        except Exception as exc:
            if classify(exc) in {Kind.TRANSIENT, Kind.FATAL} or conn.broken:
                raise
            failure = exc
    # The batch transaction is aborted (or holds the failed half-work): start it again.
    conn.rollback()
    _log(group).warning(
        "handler failed, isolating", error_class=type(failure).__name__, events=len(new)
    )
    events = prepare()
    with conn.cursor() as cursor:
        out = isolate(
            conn, cursor, group=group, events=events, error=failure, handler=handler,
            sink=sink, policy=policy, park_key=park_key, positions=positions,
        )  # fmt: skip
    verdicts.merge(out.verdicts)
    return events, out.applied, out.emitted
