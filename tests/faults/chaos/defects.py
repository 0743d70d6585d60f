"""Deliberately broken workers: the checks must catch each of these defects.

``python -m tests.faults.chaos.defects <oncepipe arguments>`` runs the ordinary ``oncepipe``
CLI after patching ONE thing, chosen by the test-only switch ``ONCEPIPE_CHAOS_DEFECT``. The
consumer and relay code stay untouched; the harness starts its workers through this shim only
in defect rounds.

============================  ================================================================
``skip_inbox``                no inbox rows, every event handed to the handler; the handler
                              (``at_least_once_clicks``) keeps ``click_events`` unique with ON
                              CONFLICT DO NOTHING but counts every delivery
``offset_before_commit``      the offset compare-and-set commits in a transaction of its own
                              before the batch's effects commit
``no_cas``                    offsets written unconditionally (no compare-and-set): a zombie
                              moves an offset backwards
``double_count``              handler bug: some events add to the counters twice
``relay_high_water``          relay selects ``id > last seen``: a row committed late is skipped
``relay_shared_shards``       a relay claims shards whether or not another relay's lease on
                              them still runs: two relays publish one shard at once
``dead_letter_outside_txn``   dead letters produced straight to ``<topic>.dlq`` while the batch
                              transaction is still open, instead of through the outbox in it
``reversed_batch``            handler bug: each batch's new events applied last to first
``dead_letter_id_without_``   a dead letter's outbox dedupe id is its source coordinates alone:
``group``                     the second group's dead letter of a record the first group
                              dead-lettered is dropped by ON CONFLICT
============================  ================================================================

The defect handlers run under the witness (``tests/fixtures/witness.py``) like the real one.

Public names: ``DEFECTS``, ``at_least_once_clicks``, ``double_counting_clicks``,
``reversed_batch_clicks``, ``main``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any

import psycopg

from consumers.context import HandlerContext
from consumers.events import InboundEvent
from tests.faults.chaos.queue_defects import queue_ack_before_commit
from tests.fixtures.witness import witnessed

__all__ = [
    "DEFECTS",
    "at_least_once_clicks",
    "double_counting_clicks",
    "main",
    "reversed_batch_clicks",
]

DEFECTS = (
    "skip_inbox",
    "offset_before_commit",
    "no_cas",
    "double_count",
    "relay_high_water",
    "relay_shared_shards",
    "dead_letter_outside_txn",
    "dead_letter_id_without_group",
    "reversed_batch",
    "queue_ack_before_commit",
)


def _at_least_once_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The click handler with an idempotent raw table but counters bumped per delivery."""
    from consumers.handlers import clicks

    apply_sql = clicks._APPLY.replace(
        "    FROM batch\n), items", "    FROM batch\n    ON CONFLICT DO NOTHING\n), items"
    )
    assert apply_sql != clicks._APPLY, "the click handler's SQL changed; update this defect"
    original, clicks._APPLY = clicks._APPLY, apply_sql
    try:
        clicks.handle_clicks(events, tx)
    finally:
        clicks._APPLY = original


def _double_counting_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The click handler, plus a second counter increment for one event in seven."""
    from consumers.handlers.clicks import handle_clicks

    handle_clicks(events, tx)
    again = [e for e in events if e.event_id.int % 7 == 0]
    for inbound in again:
        event: Any = inbound.event
        tx.cursor.execute(
            "UPDATE public.item_click_counts SET count = count + 1"
            " WHERE consumer_group = %s AND item_id = %s AND action = %s",
            (tx.consumer_group, event.item_id, event.action.value),
        )


at_least_once_clicks = witnessed(_at_least_once_clicks)
double_counting_clicks = witnessed(_double_counting_clicks)


def reversed_batch_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The witnessed click handler, given each batch's new events last to first."""
    from tests.fixtures.witness import witnessed_clicks

    witnessed_clicks(list(reversed(events)), tx)


def _skip_inbox() -> None:
    from consumers import inbox

    def claim_everything(
        cursor: psycopg.Cursor[Any], group: str, events: Sequence[InboundEvent]
    ) -> list[InboundEvent]:
        return list(events)

    inbox.claim_new = claim_everything


def _offset_before_commit() -> None:
    from consumers import offsets

    real = offsets.compare_and_set
    side: list[psycopg.Connection[Any]] = []

    def early(cursor: psycopg.Cursor[Any], group: str, moves: Sequence[Any]) -> None:
        if not side or side[0].closed or side[0].broken:
            side[:] = [psycopg.connect(os.environ["ONCEPIPE_DATABASE_URL"], autocommit=True)]
        try:
            with side[0].transaction(), side[0].cursor() as own:
                real(own, group, moves)  # committed here, before the batch's effects
        except psycopg.OperationalError:
            side[0].close()
            raise

    offsets.compare_and_set = early


def _no_cas() -> None:
    from consumers import offsets

    def unconditional(cursor: psycopg.Cursor[Any], group: str, moves: Sequence[Any]) -> None:
        for move in moves:
            offsets.overwrite(cursor, group, move.topic, {move.partition: move.next_offset})

    offsets.compare_and_set = unconditional


def _relay_high_water() -> None:
    from producers import outbox

    real = outbox.fetch_ready
    seen = [0]

    def after_last_seen(
        conn: psycopg.Connection[Any], limit: int, shards: Sequence[int] | None = None
    ) -> tuple[list[tuple[outbox.OutboxRow, int | None]], outbox.Held]:
        ready, held = real(conn, limit, shards)
        rows = [(row, partition) for row, partition in ready if row.id > seen[0]]
        if rows:
            seen[0] = max(seen[0], *(row.id for row, _ in rows))
        return rows, held

    outbox.fetch_ready = after_last_seen


def _relay_shared_shards() -> None:
    from producers import shards

    free = "WHERE owner IS NULL OR lease_until < now()"
    assert free in shards._CLAIM, "the relay's claim changed; update this defect"
    shards._CLAIM = shards._CLAIM.replace(free, "WHERE true")


def _dead_letter_outside_txn() -> None:
    from consumers import batch
    from consumers.deadletters import DeadLetterCandidate, dead_letter_record
    from oncepipe.kafka import create_producer
    from oncepipe.settings import load_settings

    producer = create_producer(load_settings())

    def publish_now(
        conn: Any, group: str, to_dead_letter: Sequence[DeadLetterCandidate], log: Any
    ) -> int:
        for item in to_dead_letter:
            letter = dead_letter_record(group, item)
            headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
            producer.produce(letter.topic, key=letter.key, value=letter.value, headers=headers)
        producer.flush(30)  # published: a rollback of the batch cannot take it back
        return len(to_dead_letter)

    # batch imported the name; the batch's own reference is the one to replace.
    batch.enqueue_dead_letters = publish_now  # type: ignore[attr-defined]


def _dead_letter_id_without_group() -> None:
    from consumers import deadletters

    real = deadletters.dead_letter_record

    def coordinates_only(group: str, item: Any) -> Any:
        record = item.rejected
        letter = real(group, item)
        dedupe_id = f"{record.topic}:{record.partition}:{record.offset}"
        return dataclasses.replace(letter, dedupe_id=dedupe_id)

    deadletters.dead_letter_record = coordinates_only


PATCHES = {
    "skip_inbox": _skip_inbox,
    "offset_before_commit": _offset_before_commit,
    "no_cas": _no_cas,
    "double_count": lambda: None,  # the handler is the defect
    "reversed_batch": lambda: None,  # the handler is the defect
    "relay_high_water": _relay_high_water,
    "relay_shared_shards": _relay_shared_shards,
    "dead_letter_outside_txn": _dead_letter_outside_txn,
    "dead_letter_id_without_group": _dead_letter_id_without_group,
    "queue_ack_before_commit": queue_ack_before_commit,  # queue_defects.py
}


def main() -> None:
    """Patch the defect named by ``ONCEPIPE_CHAOS_DEFECT``, then run the oncepipe CLI."""
    defect = os.environ.get("ONCEPIPE_CHAOS_DEFECT", "")
    if defect not in PATCHES:
        sys.exit(f"ONCEPIPE_CHAOS_DEFECT={defect!r}: choose one of {', '.join(DEFECTS)}")
    PATCHES[defect]()
    from cli.main import run

    sys.argv = ["oncepipe", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
