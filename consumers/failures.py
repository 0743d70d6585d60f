"""The failure counts (``oncepipe.consumer_failures``): how often a record failed, since when.

Counted in short committed transactions of their own, on a connection of their own, so an
attempt counts even when its batch rolls back or the worker is SIGKILLed right after; the
batch that finally moves the offset past a record deletes its row in the batch transaction.

Public names: ``History``, ``FailureLog``, ``forget_below``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from consumers.classify import is_transient
from consumers.decoding import Rejected
from consumers.offsets import OffsetMove
from oncepipe.errors import DatabaseUnavailableError

__all__ = ["FailureLog", "History", "forget_below"]

Key = tuple[str, int, int]
"""(topic, partition, offset) of a record."""


@dataclass(frozen=True)
class History:
    """How many times a record failed, and when first and last."""

    attempts: int
    first_failure: datetime
    last_failure: datetime


_RECORD = """
INSERT INTO oncepipe.consumer_failures AS f
    (consumer_group, topic, partition, "offset", event_id, stage, error_class, attempts)
VALUES (%s, %s, %s, %s, %s, %s, %s, 1)
ON CONFLICT (consumer_group, topic, partition, "offset") DO UPDATE SET
    attempts = f.attempts + 1, last_failure = now(), stage = excluded.stage,
    error_class = excluded.error_class, event_id = coalesce(excluded.event_id, f.event_id)
RETURNING attempts, first_failure, last_failure
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
    """Counts failures on its own autocommit connection, opened when first needed."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], group: str) -> None:
        self._connect = connect
        self._group = group
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    def record(self, rejected: Rejected) -> History:
        """Count one more failure of ``rejected``, committed before this returns."""
        error_class = type(rejected.error).__qualname__
        params = (
            self._group,
            rejected.topic,
            rejected.partition,
            rejected.offset,
            _event_uuid(rejected.event_id),
            rejected.stage,
            error_class,
        )
        try:
            row = self._connection().execute(_RECORD, params).fetchone()
        except psycopg.Error as exc:
            if not is_transient(exc):
                raise
            # A read-only or timed-out session stays so: the next attempt opens a new one.
            self.close()
            raise DatabaseUnavailableError(
                f"cannot count a failure ({exc.sqlstate or 'connection'}); retrying the batch"
            ) from exc
        assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
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
        try:
            rows = self._connection().execute(_HISTORY, params).fetchall()
        except psycopg.Error as exc:
            if not is_transient(exc):
                raise
            self.close()
            raise DatabaseUnavailableError(
                f"cannot read failure counts ({exc.sqlstate or 'connection'}); retrying the batch"
            ) from exc
        return {
            (t, int(p), int(o)): History(int(n), first, last) for t, p, o, n, first, last in rows
        }

    def close(self) -> None:
        """Close the connection (a new one is opened when next needed)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


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
