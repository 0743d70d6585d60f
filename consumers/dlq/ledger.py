"""The replay ledger, ``oncepipe.dlq_replays``: which dead letters were replayed, where, by whom.

The ledger is what makes a replay happen once:

1. claim: one committed statement inserts a ``claimed`` row per dead letter (``ON CONFLICT DO
   NOTHING``, or re-claims a ``failed`` row, a ``sent`` one with ``force``, or a claim left by
   a replay that died); only the rows it returns may be sent, so two replays at once never
   both send a record;
2. send (the caller), waiting for the broker's acknowledgements;
3. record: ``sent`` with the replay's partition and offset, or ``failed`` with the error,
   which lets the next replay claim it again.

This module owns the table's SQL. Public names: ``Claim``, ``LedgerEntry``, ``claim``,
``record_sent``, ``record_failed``, ``entries``, ``is_replayable``, ``key_of``, ``replayed_by``.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.dlq.headers import DeadLetter
from consumers.events import Key

__all__ = [
    "Claim",
    "LedgerEntry",
    "claim",
    "entries",
    "is_replayable",
    "key_of",
    "record_failed",
    "record_sent",
    "replayed_by",
]

# A replay waits at most the producer's delivery timeout (2 min by default) for its acks: a
# claim older than this belongs to a replay that died, and may be taken over.
DEFAULT_STALE_CLAIM_S = 600.0


def replayed_by() -> str:
    """``user@host`` of this process, for the ledger."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Claim:
    """Dead letters this replay may send, with the replay count each send carries."""

    claim_id: uuid.UUID
    counts: dict[Key, int]


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the ledger."""

    key: Key
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    event_id: str | None
    destination_topic: str
    outcome: str
    replay_count: int
    claimed_at: datetime
    replayed_at: datetime | None
    replayed_by: str
    replay_partition: int | None
    replay_offset: int | None
    error: str | None


def is_replayable(
    entry: LedgerEntry | None,
    *,
    stale_after_s: float = DEFAULT_STALE_CLAIM_S,
    now: datetime | None = None,
) -> bool:
    """True when a claim without ``force`` would take the dead letter (the claim's WHERE)."""
    if entry is None or entry.outcome == "failed":
        return True
    if entry.outcome == "claimed":
        return entry.claimed_at < (now or datetime.now(UTC)) - timedelta(seconds=stale_after_s)
    return False


def key_of(letter: DeadLetter) -> Key:
    """The ledger key of a dead letter."""
    return (letter.dlq_topic, letter.dlq_partition, letter.dlq_offset)


_CLAIM = """
INSERT INTO oncepipe.dlq_replays AS r (
    dlq_topic, dlq_partition, dlq_offset, source_topic, source_partition, source_offset,
    event_id, destination_topic, replay_count, outcome, claim_id, replayed_by
)
SELECT t.*, 'claimed', %(claim_id)s, %(by)s
FROM unnest(
    %(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[], %(sources)s::text[],
    %(source_partitions)s::int[], %(source_offsets)s::bigint[], %(event_ids)s::text[],
    %(destinations)s::text[], %(counts)s::int[]
) AS t
ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO UPDATE SET
    outcome = 'claimed',
    replay_count = r.replay_count + 1,
    destination_topic = excluded.destination_topic,
    claim_id = excluded.claim_id,
    claimed_at = now(),
    replayed_by = excluded.replayed_by,
    replayed_at = NULL,
    replay_partition = NULL,
    replay_offset = NULL,
    error = NULL
WHERE r.outcome = 'failed'
   OR (r.outcome = 'sent' AND %(force)s)
   OR (r.outcome = 'claimed' AND r.claimed_at < now() - make_interval(secs => %(stale_s)s))
RETURNING dlq_topic, dlq_partition, dlq_offset, replay_count
"""


def claim(
    conn: Any,
    letters: Sequence[tuple[DeadLetter, str]],
    *,
    force: bool = False,
    stale_after_s: float = DEFAULT_STALE_CLAIM_S,
    by: str | None = None,
) -> Claim:
    """Claim (dead letter, destination) pairs in one committed transaction; see the module.

    ``by``: who replays, for the ledger (default ``replayed_by()``).
    """
    claim_id = uuid.uuid4()
    unique = {key_of(letter): (letter, to) for letter, to in letters}
    if not unique:
        return Claim(claim_id, {})
    pairs = list(unique.values())
    params = {
        "claim_id": claim_id,
        "by": by or replayed_by(),
        "force": force,
        "stale_s": stale_after_s,
        "topics": [letter.dlq_topic for letter, _ in pairs],
        "partitions": [letter.dlq_partition for letter, _ in pairs],
        "offsets": [letter.dlq_offset for letter, _ in pairs],
        "sources": [letter.source_topic for letter, _ in pairs],
        "source_partitions": [letter.source_partition for letter, _ in pairs],
        "source_offsets": [letter.source_offset for letter, _ in pairs],
        "event_ids": [letter.event_id for letter, _ in pairs],
        "destinations": [to for _, to in pairs],
        # A dead letter of a replayed record continues that record's count.
        "counts": [letter.replay_count + 1 for letter, _ in pairs],
    }
    with conn.transaction():
        rows = conn.execute(_CLAIM, params).fetchall()
    return Claim(claim_id, {(t, int(p), int(o)): int(n) for t, p, o, n in rows})


def record_sent(
    conn: Any, claim_id: uuid.UUID, sent: Sequence[tuple[Key, int | None, int | None]]
) -> None:
    """Mark claimed rows ``sent``, with where the replay landed (key, partition, offset)."""
    if not sent:
        return
    with conn.transaction():
        conn.execute(
            """
            UPDATE oncepipe.dlq_replays AS r
            SET outcome = 'sent', replayed_at = now(), replay_partition = t.p,
                replay_offset = t.o, error = NULL
            FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::int[], %s::bigint[])
                AS t(topic, partition, "offset", p, o)
            WHERE (r.dlq_topic, r.dlq_partition, r.dlq_offset) = (t.topic, t.partition, t."offset")
              AND r.claim_id = %s
            """,
            (
                [key[0] for key, _, _ in sent],
                [key[1] for key, _, _ in sent],
                [key[2] for key, _, _ in sent],
                [partition for _, partition, _ in sent],
                [offset for _, _, offset in sent],
                claim_id,
            ),
        )


def record_failed(conn: Any, claim_id: uuid.UUID, failed: Sequence[tuple[Key, str]]) -> None:
    """Mark claimed rows ``failed`` with the reason; the next replay may claim them again."""
    if not failed:
        return
    with conn.transaction():
        conn.execute(
            """
            UPDATE oncepipe.dlq_replays AS r
            SET outcome = 'failed', replayed_at = now(), error = t.error
            FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::text[])
                AS t(topic, partition, "offset", error)
            WHERE (r.dlq_topic, r.dlq_partition, r.dlq_offset) = (t.topic, t.partition, t."offset")
              AND r.claim_id = %s
            """,
            (
                [key[0] for key, _ in failed],
                [key[1] for key, _ in failed],
                [key[2] for key, _ in failed],
                [error for _, error in failed],
                claim_id,
            ),
        )


def entries(conn: Any, keys: Sequence[Key] | None = None) -> dict[Key, LedgerEntry]:
    """Ledger rows by key: those of ``keys``, or every row."""
    sql = """
        SELECT dlq_topic, dlq_partition, dlq_offset, source_topic, source_partition,
               source_offset, event_id, destination_topic, outcome, replay_count, claimed_at,
               replayed_at, replayed_by, replay_partition, replay_offset, error
        FROM oncepipe.dlq_replays
    """
    params: tuple[Any, ...] = ()
    if keys is not None:
        if not keys:
            return {}
        sql += """
            WHERE (dlq_topic, dlq_partition, dlq_offset) IN (
                SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[]))
        """
        params = ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    rows = conn.execute(sql, params).fetchall()
    found: dict[Key, LedgerEntry] = {}
    for row in rows:
        key = (row[0], int(row[1]), int(row[2]))
        found[key] = LedgerEntry(key, *row[3:])
    return found
