"""One batch, one PostgreSQL transaction: the heart of exactly-once effects.

Public names: ``BatchResult``, ``apply_batch``, ``plan_moves``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from consumers import inbox, offsets
from consumers.context import HandlerContext, OutboxSink
from consumers.events import Coordinates, InboundEvent
from consumers.offsets import OffsetMove
from consumers.registry import Handler
from oncepipe.crash import crash_point
from oncepipe.errors import DatabaseUnavailableError, RetriableError
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


def plan_moves(
    events: Sequence[InboundEvent], positions: Mapping[Coordinates, int | None]
) -> tuple[OffsetMove, ...]:
    """Per partition: from its stored offset to one past its last event in the batch."""
    last: dict[Coordinates, int] = {}
    for event in events:
        last[event.coordinates] = max(event.offset, last.get(event.coordinates, -1))
    return tuple(
        OffsetMove(topic, partition, positions[(topic, partition)], offset + 1)
        for (topic, partition), offset in sorted(last.items())
    )


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if conn.closed:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        # A broken connection cannot roll back; the server already discarded the transaction
        # and the runtime reconnects before the next batch.
        conn.close()


def apply_batch(
    conn: psycopg.Connection[Any],
    *,
    settings: Settings,
    group: str,
    events: Sequence[InboundEvent],
    positions: Mapping[Coordinates, int | None],
    handler: Handler,
    sink: OutboxSink | None = None,
) -> BatchResult:
    """Apply ``events`` (partition order) in one transaction and move their offsets.

    1. Inbox rows for every event, ON CONFLICT DO NOTHING: the rows inserted are the NEW
       events; the others were applied before (upstream retry, redelivery, zombie).
    2. The handler, with the NEW events only, on the same transaction.
    3. Derived events the handler emitted go into the outbox, same transaction.
    4. Offsets: a compare-and-set from ``positions`` (what this worker loaded from PostgreSQL)
       to one past each partition's last event; a mismatch raises ``FencedError``.
    5. COMMIT. Effects, dedupe records and offsets become visible together or not at all.

    On any error the transaction is rolled back and the error re-raised; PostgreSQL's
    transient failures come back as ``RetriableError``.
    """
    moves = plan_moves(events, positions)
    try:
        with conn.cursor() as cursor:
            new = inbox.claim_new(cursor, group, events)
            crash_point(settings, "consumer.before_handler")
            context = HandlerContext(conn, cursor, group, sink)
            if new:
                handler(new, context)
            emitted = context.flush_emitted()
            offsets.compare_and_set(cursor, group, moves)
        crash_point(settings, "consumer.after_handler")
        conn.commit()
    except psycopg.errors.TransactionRollback as exc:
        _rollback(conn)
        raise RetriableError(
            f"batch transaction aborted ({exc.sqlstate}: {type(exc).__name__}); retrying"
        ) from exc
    except psycopg.OperationalError as exc:
        _rollback(conn)
        raise DatabaseUnavailableError(
            f"PostgreSQL failed during a batch ({exc.sqlstate or 'connection'}): "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    except BaseException:
        _rollback(conn)
        raise
    return BatchResult(
        events=len(events),
        applied=len(new),
        duplicates=len(events) - len(new),
        emitted=emitted,
        moves=moves,
    )
