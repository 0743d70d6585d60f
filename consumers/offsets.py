"""The offset store (``oncepipe.consumer_offsets``): where each group resumes, and the fence.

A batch moves a partition's offset with a compare-and-set on the value it started from; a
consumer that lost the partition (rebalance, long stall) finds another value there and its
whole batch rolls back (DESIGN invariant 4).

Public names: ``OffsetMove``, ``StoredOffset``, ``compare_and_set``, ``load``, ``list_stored``,
``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from consumers.events import Coordinates
from oncepipe.errors import FencedError

__all__ = ["OffsetMove", "StoredOffset", "compare_and_set", "list_stored", "load", "overwrite"]


@dataclass(frozen=True)
class OffsetMove:
    """Move one partition from ``expected`` (None: no row yet) to ``next_offset``."""

    topic: str
    partition: int
    expected: int | None
    next_offset: int


@dataclass(frozen=True)
class StoredOffset:
    """One stored row, for ``oncepipe offsets show``."""

    consumer_group: str
    topic: str
    partition: int
    next_offset: int
    updated_at: datetime


# Two owners of one partition only meet when one of them is a zombie; if their row locks
# deadlock, PostgreSQL aborts one and it retries (a transient error), so no lock order is needed.
_UPDATE = """
WITH moves AS (
    SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(expected)s::bigint[],
                         %(next)s::bigint[]) AS m(topic, partition, expected, next_offset)
)
UPDATE oncepipe.consumer_offsets AS o
SET next_offset = m.next_offset, updated_at = now()
FROM moves AS m
WHERE o.consumer_group = %(group)s AND o.topic = m.topic AND o.partition = m.partition
  AND o.next_offset = m.expected
"""

_INSERT = """
INSERT INTO oncepipe.consumer_offsets (consumer_group, topic, partition, next_offset)
SELECT %(group)s, m.topic, m.partition, m.next_offset
FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(next)s::bigint[])
     AS m(topic, partition, next_offset)
ON CONFLICT (consumer_group, topic, partition) DO NOTHING
"""


def _columns(moves: Sequence[OffsetMove]) -> dict[str, list[Any]]:
    return {
        "topics": [m.topic for m in moves],
        "partitions": [m.partition for m in moves],
        "expected": [m.expected for m in moves],
        "next": [m.next_offset for m in moves],
    }


def compare_and_set(cursor: psycopg.Cursor[Any], group: str, moves: Sequence[OffsetMove]) -> None:
    """Move every partition or raise ``FencedError``; the caller must then roll back.

    1. Partitions with a stored row: UPDATE ... WHERE next_offset = expected. Under READ
       COMMITTED a concurrent writer's row is re-checked after it commits, so a changed
       value matches no row.
    2. Partitions without one: INSERT ... ON CONFLICT DO NOTHING; someone else's row wins.
    3. Fewer rows written than moves means another consumer moved a partition: fenced.
    """
    updates = [m for m in moves if m.expected is not None]
    inserts = [m for m in moves if m.expected is None]
    written = 0
    if updates:
        cursor.execute(_UPDATE, {"group": group, **_columns(updates)})
        written += cursor.rowcount
    if inserts:
        cursor.execute(_INSERT, {"group": group, **_columns(inserts)})
        written += cursor.rowcount
    if written != len(moves):
        where = ", ".join(f"{m.topic}[{m.partition}]@{m.expected}" for m in moves)
        raise FencedError(
            f"offset compare-and-set wrote {written} of {len(moves)} partitions for group "
            f"{group!r} ({where}): another consumer moved them; rolling back"
        )


def topics_with_offsets(cursor: psycopg.Cursor[Any], group: str, topics: Iterable[str]) -> set[str]:
    """The ``topics`` for which ``group`` has stored at least one offset."""
    cursor.execute(
        "SELECT DISTINCT topic FROM oncepipe.consumer_offsets"
        " WHERE consumer_group = %s AND topic = ANY(%s::text[])",
        (group, sorted(set(topics))),
    )
    return {str(row[0]) for row in cursor.fetchall()}


def load(
    cursor: psycopg.Cursor[Any], group: str, partitions: Iterable[Coordinates]
) -> dict[Coordinates, int | None]:
    """The stored next offset of each partition, None where the group has none."""
    wanted = sorted(set(partitions))
    result: dict[Coordinates, int | None] = dict.fromkeys(wanted)
    if not wanted:
        return result
    cursor.execute(
        "SELECT o.topic, o.partition, o.next_offset FROM oncepipe.consumer_offsets AS o"
        " JOIN unnest(%s::text[], %s::int[]) AS w(topic, partition)"
        " ON o.topic = w.topic AND o.partition = w.partition"
        " WHERE o.consumer_group = %s",
        ([t for t, _ in wanted], [p for _, p in wanted], group),
    )
    for topic, partition, next_offset in cursor.fetchall():
        result[(topic, partition)] = int(next_offset)
    return result


def list_stored(cursor: psycopg.Cursor[Any], group: str | None = None) -> list[StoredOffset]:
    """Every stored offset, optionally of one group, ordered by group, topic, partition."""
    cursor.execute(
        "SELECT consumer_group, topic, partition, next_offset, updated_at"
        " FROM oncepipe.consumer_offsets"
        " WHERE %(group)s::text IS NULL OR consumer_group = %(group)s"
        " ORDER BY consumer_group, topic, partition",
        {"group": group},
    )
    return [StoredOffset(*row) for row in cursor.fetchall()]


def overwrite(
    cursor: psycopg.Cursor[Any], group: str, topic: str, offsets: Mapping[int, int]
) -> None:
    """Set offsets unconditionally (operator reset); running workers fence themselves on it."""
    parts = sorted(offsets)
    cursor.execute(
        "INSERT INTO oncepipe.consumer_offsets (consumer_group, topic, partition, next_offset)"
        " SELECT %s, %s, p, n FROM unnest(%s::int[], %s::bigint[]) AS r(p, n)"
        " ON CONFLICT (consumer_group, topic, partition)"
        " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
        (group, topic, parts, [offsets[p] for p in parts]),
    )
