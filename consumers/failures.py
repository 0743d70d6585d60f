"""The failure counts (``oncepipe.consumer_failures``): how often a record failed, since when.

Counted in short committed transactions of their own, on a connection of their own, so an
attempt counts even when its batch rolls back or the worker is SIGKILLed right after; the
batch that finally moves the offset past a record deletes its row in the batch transaction.

A worker counts only on partitions it took last (``oncepipe.consumer_owners``, written by
``claim`` on assignment): a zombie that lost its partition without knowing it gets
``FencedError`` instead of counting attempts the new owner makes too.

Public names: ``History``, ``FailureLog``, ``NotOwnerError``, ``claim``, ``forget_below``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from consumers.decoding import Rejected
from consumers.events import Key
from consumers.offsets import OffsetMove
from oncepipe.db import wrap_as_unavailable
from oncepipe.errors import FencedError

__all__ = ["FailureLog", "History", "NotOwnerError", "claim", "forget_below"]


class NotOwnerError(FencedError):
    """Another worker claimed the partition since: this one is a zombie and counts nothing."""


@dataclass(frozen=True)
class History:
    """How many times a record failed, and when first and last."""

    attempts: int
    first_failure: datetime
    last_failure: datetime


# No row comes back when another worker owns the partition now (the SELECT yields nothing).
_RECORD = """
INSERT INTO oncepipe.consumer_failures AS f
    (consumer_group, topic, partition, "offset", event_id, stage, error_class, attempts)
SELECT %(group)s::text, %(topic)s::text, %(partition)s::int, %(offset)s::bigint,
       %(event_id)s::uuid, %(stage)s::text, %(error_class)s::text, 1
WHERE NOT EXISTS (
    SELECT 1 FROM oncepipe.consumer_owners AS w
    WHERE w.consumer_group = %(group)s::text AND w.topic = %(topic)s::text
      AND w.partition = %(partition)s::int
      AND w.owner <> %(owner)s::uuid
)
ON CONFLICT (consumer_group, topic, partition, "offset") DO UPDATE SET
    attempts = f.attempts + 1, last_failure = now(), stage = excluded.stage,
    error_class = excluded.error_class, event_id = coalesce(excluded.event_id, f.event_id)
RETURNING attempts, first_failure, last_failure
"""

_CLAIM = """
INSERT INTO oncepipe.consumer_owners AS w (consumer_group, topic, partition, owner)
SELECT %s, c.topic, c.partition, %s FROM unnest(%s::text[], %s::int[]) AS c(topic, partition)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET owner = excluded.owner, since = now()
"""

_HISTORY = """
SELECT f.topic, f.partition, f."offset", f.attempts, f.first_failure, f.last_failure
FROM oncepipe.consumer_failures AS f
JOIN unnest(%s::text[], %s::int[], %s::bigint[]) AS k(topic, partition, "offset")
  ON (f.topic, f.partition, f."offset") = (k.topic, k.partition, k."offset")
WHERE f.consumer_group = %s
"""

_FORGET = """
DELETE FROM oncepipe.consumer_failures AS f
USING unnest(%s::text[], %s::int[], %s::bigint[]) AS m(topic, partition, next_offset)
WHERE f.consumer_group = %s AND f.topic = m.topic AND f.partition = m.partition
  AND f."offset" < m.next_offset
"""


def _event_uuid(text: str | None) -> uuid.UUID | None:
    """A header's event id only if it is a UUID: the column is typed, the header is not."""
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


class FailureLog:
    """Counts failures on its own autocommit connection, opened when first needed.

    With an ``owner`` token, only on partitions that token claimed last; without one, always.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        group: str,
        owner: uuid.UUID | None = None,
    ) -> None:
        self._connect = connect
        self._group = group
        self._owner = owner
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    def record(self, rejected: Rejected) -> History:
        """Count one more failure of ``rejected``, committed before this returns.

        Raises ``FencedError`` (counting nothing) when another worker claimed the partition.
        """
        params = {
            "group": self._group,
            "topic": rejected.topic,
            "partition": rejected.partition,
            "offset": rejected.offset,
            "event_id": _event_uuid(rejected.event_id),
            "stage": rejected.stage,
            "error_class": type(rejected.error).__qualname__,
            "owner": self._owner,
        }
        # A read-only or timed-out session stays so: the next attempt opens a new one.
        with wrap_as_unavailable(
            lambda exc: (
                f"cannot count a failure ({exc.sqlstate or 'connection'}); retrying the batch"
            ),
            cleanup=self.close,
        ):
            row = self._connection().execute(_RECORD, params).fetchone()
        if row is None:
            raise NotOwnerError(
                f"{rejected.topic}[{rejected.partition}] has another owner in group "
                f"{self._group!r}; this worker's failure at offset {rejected.offset} is not "
                "counted, rolling back"
            )
        return History(int(row[0]), row[1], row[2])

    def history(self, rejected: Sequence[Rejected]) -> dict[Key, History]:
        """The counted failures of these records, for those that have any."""
        if not rejected:
            return {}
        params = (
            [r.topic for r in rejected],
            [r.partition for r in rejected],
            [r.offset for r in rejected],
            self._group,
        )
        with wrap_as_unavailable(
            lambda exc: (
                f"cannot read failure counts ({exc.sqlstate or 'connection'}); retrying the batch"
            ),
            cleanup=self.close,
        ):
            rows = self._connection().execute(_HISTORY, params).fetchall()
        return {
            (t, int(p), int(o)): History(int(n), first, last) for t, p, o, n, first, last in rows
        }

    def close(self) -> None:
        """Close the connection (a new one is opened when next needed)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


def claim(
    cursor: psycopg.Cursor[Any],
    group: str,
    owner: uuid.UUID,
    partitions: Sequence[tuple[str, int]],
) -> None:
    """Record ``owner`` as the worker that took ``partitions`` last (the caller commits)."""
    if partitions:
        cursor.execute(
            _CLAIM, (group, owner, [t for t, _ in partitions], [p for _, p in partitions])
        )


def forget_below(cursor: psycopg.Cursor[Any], group: str, moves: Sequence[OffsetMove]) -> None:
    """In the batch transaction: drop the counts of records the offsets now move past."""
    if not moves:
        return
    cursor.execute(
        _FORGET,
        (
            [m.topic for m in moves],
            [m.partition for m in moves],
            [m.next_offset for m in moves],
            group,
        ),
    )
