"""The replay ledger, ``oncepipe.dlq_replays``: which dead letters were replayed, where, by whom.

The ledger is what makes a replay happen once:

1. claim: one committed statement inserts a ``claimed`` row per dead letter (``ON CONFLICT DO
   NOTHING``, or re-claims a ``failed`` row, a ``sent`` one with ``force``, or a claim left by
   a replay that died); only the rows it returns may be sent, so two replays at once never
   both send a record;
2. send (the caller), waiting for the broker's acknowledgements;
3. record: ``sent`` with the replay's partition and offset, or ``failed`` with the error,
   which lets the next replay claim it again.

A replay in chunks records the outcomes of one chunk (``Marks``) in the statement that claims
the next: one round trip and one commit per chunk.

This module owns the table's SQL. Public names: ``Claim``, ``LedgerEntry``, ``Marks``,
``claim``, ``record``, ``record_sent``, ``record_failed``, ``entries``, ``is_replayable``,
``key_of``, ``replayed_by``.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.dlq.headers import DeadLetter
from consumers.events import Key

__all__ = [
    "Claim",
    "LedgerEntry",
    "Marks",
    "claim",
    "entries",
    "is_replayable",
    "key_of",
    "record",
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


# The previous chunk's outcomes (``sent`` with where it landed, or ``failed`` with why) and
# the next chunk's claim in ONE statement: one round trip and one commit per chunk. The two
# touch different rows (a dead letter is in one chunk only), which a statement's CTEs require.
# The marks change no indexed column: with the table's free space (0023) they are HOT updates.
_MARK = """
UPDATE oncepipe.dlq_replays AS r
SET outcome = t.outcome, replayed_at = now(), replay_partition = t.p, replay_offset = t.o,
    error = t.error
FROM unnest(
    %(m_claims)b::uuid[], %(m_topics)b::text[], %(m_partitions)b::int[], %(m_offsets)b::bigint[],
    %(m_outcomes)b::text[], %(m_p)b::int[], %(m_o)b::bigint[], %(m_errors)b::text[]
) AS t(claim_id, topic, partition, "offset", outcome, p, o, error)
WHERE (r.dlq_topic, r.dlq_partition, r.dlq_offset) = (t.topic, t.partition, t."offset")
  AND r.claim_id = t.claim_id
"""

_CLAIM = (
    """
WITH marked AS ("""
    + _MARK
    + """)
INSERT INTO oncepipe.dlq_replays AS r (
    dlq_topic, dlq_partition, dlq_offset, source_topic, source_partition, source_offset,
    event_id, destination_topic, replay_count, outcome, claim_id, replayed_by
)
SELECT t.*, 'claimed', %(claim_id)b, %(by)b
FROM unnest(
    %(topics)b::text[], %(partitions)b::int[], %(offsets)b::bigint[], %(sources)b::text[],
    %(source_partitions)b::int[], %(source_offsets)b::bigint[], %(event_ids)b::text[],
    %(destinations)b::text[], %(counts)b::int[]
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
   OR (r.outcome = 'sent' AND %(force)b)
   OR (r.outcome = 'claimed' AND r.claimed_at < now() - make_interval(secs => %(stale_s)b))
RETURNING dlq_topic, dlq_partition, dlq_offset, replay_count
"""
)


@dataclass
class Marks:
    """Outcomes of sends to record, column by column as the statement takes them."""

    claims: list[uuid.UUID] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    landed_partitions: list[int | None] = field(default_factory=list)
    landed_offsets: list[int | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.claims)

    def sent(
        self, claim_id: uuid.UUID, key: Key, partition: int | None, offset: int | None
    ) -> None:
        """``key`` (claimed by ``claim_id``) was acknowledged at ``partition``/``offset``."""
        self._add(claim_id, key, ("sent", partition, offset, None))

    def sent_all(
        self,
        claim_id: uuid.UUID,
        keys: Sequence[Key],
        partitions: Sequence[int | None],
        offsets: Sequence[int | None],
    ) -> None:
        """``keys`` (claimed by ``claim_id``) were acknowledged at ``partitions``/``offsets``."""
        n = len(keys)
        self.claims += [claim_id] * n
        self.topics += [key[0] for key in keys]
        self.partitions += [key[1] for key in keys]
        self.offsets += [key[2] for key in keys]
        self.outcomes += ["sent"] * n
        self.landed_partitions += partitions
        self.landed_offsets += offsets
        self.errors += [None] * n

    def failed(self, claim_id: uuid.UUID, key: Key, error: str) -> None:
        """``key`` (claimed by ``claim_id``) was not written: the next replay may claim it."""
        self._add(claim_id, key, ("failed", None, None, error))

    def extend(self, other: Marks) -> None:
        """Add ``other``'s rows to these."""
        for mine, theirs in zip(self._columns(), other._columns(), strict=True):
            mine.extend(theirs)

    def params(self) -> dict[str, list[Any]]:
        """The statement's ``m_*`` parameters."""
        names = ("claims", "topics", "partitions", "offsets", "outcomes", "p", "o", "errors")
        return {f"m_{name}": column for name, column in zip(names, self._columns(), strict=True)}

    def _columns(self) -> tuple[list[Any], ...]:
        return (self.claims, self.topics, self.partitions, self.offsets, self.outcomes,
                self.landed_partitions, self.landed_offsets, self.errors)  # fmt: skip

    def _add(
        self, claim_id: uuid.UUID, key: Key, outcome: tuple[str, int | None, int | None, str | None]
    ) -> None:
        self.claims.append(claim_id)
        self.topics.append(key[0])
        self.partitions.append(key[1])
        self.offsets.append(key[2])
        self.outcomes.append(outcome[0])
        self.landed_partitions.append(outcome[1])
        self.landed_offsets.append(outcome[2])
        self.errors.append(outcome[3])


def _committed(conn: Any, sql: str, params: Any) -> Any:
    """Run one statement, committed.

    On an autocommit session it is its own transaction (one round trip, no BEGIN/COMMIT),
    or part of the caller's ``transaction()`` block if one is open.
    """
    if conn.autocommit:
        return conn.execute(sql, params)
    with conn.transaction():
        return conn.execute(sql, params)


def claim(
    conn: Any,
    letters: Sequence[tuple[DeadLetter, str]],
    *,
    force: bool = False,
    stale_after_s: float = DEFAULT_STALE_CLAIM_S,
    by: str | None = None,
    marks: Marks | None = None,
) -> Claim:
    """Claim (dead letter, destination) pairs in one committed statement; see the module.

    ``by``: who replays, for the ledger (default ``replayed_by()``). ``marks``: outcomes of
    earlier sends (none of these dead letters), recorded in the same statement.
    """
    claim_id = uuid.uuid4()
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    topics, partitions, offsets, sources, source_partitions, source_offsets = columns[:6]
    event_ids, destinations, counts = columns[6:]
    seen: set[Key] = set()
    for letter, to in letters:  # one pass, the statement's columns
        key = (letter.dlq_topic, letter.dlq_partition, letter.dlq_offset)
        if key in seen:
            continue
        seen.add(key)
        topics.append(key[0])
        partitions.append(key[1])
        offsets.append(key[2])
        sources.append(letter.source_topic)
        source_partitions.append(letter.source_partition)
        source_offsets.append(letter.source_offset)
        event_ids.append(letter.event_id)
        destinations.append(to)
        # A dead letter of a replayed record continues that record's count.
        counts.append(letter.replay_count + 1)
    if not seen:
        if marks:
            record(conn, marks)
        return Claim(claim_id, {})
    params = {
        **(marks or Marks()).params(),
        "claim_id": claim_id,
        "by": by or replayed_by(),
        "force": force,
        "stale_s": stale_after_s,
        "topics": topics,
        "partitions": partitions,
        "offsets": offsets,
        "sources": sources,
        "source_partitions": source_partitions,
        "source_offsets": source_offsets,
        "event_ids": event_ids,
        "destinations": destinations,
        "counts": counts,
    }
    rows = _committed(conn, _CLAIM, params).fetchall()
    return Claim(claim_id, {(t, p, o): n for t, p, o, n in rows})


def record(conn: Any, marks: Marks) -> None:
    """Record ``marks`` (``sent`` or ``failed`` rows) in one committed statement."""
    if marks:
        _committed(conn, _MARK, marks.params())


def record_sent(
    conn: Any, claim_id: uuid.UUID, sent: Sequence[tuple[Key, int | None, int | None]]
) -> None:
    """Mark claimed rows ``sent``, with where the replay landed (key, partition, offset)."""
    marks = Marks()
    for key, partition, offset in sent:
        marks.sent(claim_id, key, partition, offset)
    record(conn, marks)


def record_failed(conn: Any, claim_id: uuid.UUID, failed: Sequence[tuple[Key, str]]) -> None:
    """Mark claimed rows ``failed`` with the reason; the next replay may claim them again."""
    marks = Marks()
    for key, error in failed:
        marks.failed(claim_id, key, error)
    record(conn, marks)


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
