"""The offset store (``oncepipe.consumer_offsets``): where each group resumes, and the fence.

A batch moves a partition's offset with a compare-and-set on the value it started from; a
consumer that lost the partition (rebalance, long stall) finds another value there and its
whole batch rolls back (DESIGN invariant 4).

Public names: ``OffsetMove``, ``StoredOffset``, ``compare_and_set``, ``fenced_errors``,
``FENCED_SQLSTATE``, ``load``, ``list_stored``, ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from consumers.events import Coordinates
from oncepipe.errors import FencedError

__all__ = [
    "FENCED_SQLSTATE",
    "OffsetMove",
    "StoredOffset",
    "compare_and_set",
    "fenced_errors",
    "list_stored",
    "load",
    "overwrite",
]


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
# The function (oncepipe/sql/0021_offsets_move.sql) raises FENCED_SQLSTATE when fenced, so the
# batch can send it with its COMMIT in one round trip (pipeline mode).
_MOVE = (
    "SELECT oncepipe.consumer_offsets_move(%(group)s, %(topics)s::text[], %(partitions)s::int[],"
    " %(expected)s::bigint[], %(next)s::bigint[])"
)
FENCED_SQLSTATE = "OP409"
"""What ``oncepipe.consumer_offsets_move`` raises when another consumer moved a partition."""


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

    One statement, which fails (SQLSTATE ``OP409``) when fenced: in pipeline mode the error
    comes at the next sync, which ``fenced_errors`` turns into ``FencedError`` there.
    """
    if not moves:
        return
    with fenced_errors(group, moves):
        cursor.execute(_MOVE, {"group": group, **_columns(moves)})


@contextmanager
def fenced_errors(group: str, moves: Sequence[OffsetMove]) -> Iterator[None]:
    """Turn the compare-and-set's failure (``FENCED_SQLSTATE``) into ``FencedError``."""
    try:
        yield
    except psycopg.Error as exc:
        if exc.sqlstate != FENCED_SQLSTATE:
            raise
        where = ", ".join(f"{m.topic}[{m.partition}]@{m.expected}" for m in moves)
        primary = exc.diag.message_primary or "offset compare-and-set failed"
        raise FencedError(
            f"{primary} ({where}): another consumer moved them; rolling back"
        ) from exc


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
