"""Stored offsets that fell out of the log: a topic recreated, or records gone with retention.

librdkafka would quietly reset such a partition (to the log start, say) and the worker would
then drop every record below the stored offset, or skip what retention deleted, without a word.
The runtime checks the stored offset against the partition's watermarks instead and follows
``ONCEPIPE_CONSUMER_OFFSET_OUT_OF_RANGE``: ``hold`` the partition (paused, logged again every
``out_of_range_recheck_s``) until ``oncepipe offsets reset`` moves the stored offset back into
the log, or ``reset`` it to the log start with a warning.

Public names: ``LogBounds``, ``OutOfRange``, ``Parked``, ``out_of_range``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from consumers import offsets
from consumers.assignment import Assignment
from consumers.events import Coordinates
from consumers.offsets import OffsetMove
from consumers.settings import ConsumerSettings
from oncepipe.errors import FencedError, RetriableError
from oncepipe.kafka import KafkaConsumer, KafkaException, Record

__all__ = ["LogBounds", "OutOfRange", "Parked", "out_of_range"]


@dataclass(frozen=True)
class OutOfRange:
    """A partition whose stored offset lies outside [log start, log end]."""

    topic: str
    partition: int
    stored: int
    log_start: int
    log_end: int

    @property
    def where(self) -> Coordinates:
        """The (topic, partition)."""
        return (self.topic, self.partition)

    @property
    def reason(self) -> str:
        """Why it is out of range, in words an operator can act on."""
        if self.stored > self.log_end:
            return (
                f"stored offset {self.stored} is beyond the log end {self.log_end} "
                "(was the topic deleted and created again?)"
            )
        return (
            f"stored offset {self.stored} is below the log start {self.log_start} "
            f"(retention or deleted records removed {self.log_start - self.stored} unread)"
        )

    def fields(self) -> dict[str, object]:
        """Log fields with the numbers."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "stored_offset": self.stored,
            "log_start": self.log_start,
            "log_end": self.log_end,
        }


def out_of_range(
    where: Coordinates, stored: int | None, watermarks: tuple[int, int] | None
) -> OutOfRange | None:
    """The problem with ``stored`` given the (low, high) watermarks, or None if all is well.

    No stored offset, or unknown watermarks (negative: not fetched yet), is not a problem.
    """
    if stored is None or watermarks is None:
        return None
    low, high = watermarks
    if low < 0 or high < 0 or low <= stored <= high:
        return None
    return OutOfRange(where[0], where[1], stored, low, high)


class Parked:
    """Partitions held because their stored offset is out of range, and when to look again."""

    def __init__(self, recheck_s: float) -> None:
        self._recheck_s = recheck_s
        self._due: dict[Coordinates, float] = {}

    def __contains__(self, where: object) -> bool:
        return where in self._due

    def park(self, where: Coordinates) -> None:
        """Hold ``where`` until the next check."""
        self._due[where] = time.monotonic() + self._recheck_s

    def due(self) -> list[Coordinates]:
        """The held partitions whose next check is due."""
        now = time.monotonic()
        return [where for where, due in self._due.items() if due <= now]

    def release(self, partitions: Iterable[Coordinates]) -> None:
        """Forget these partitions (back in range, revoked or lost)."""
        for where in partitions:
            self._due.pop(where, None)


class LogBounds:
    """Applies the out-of-range policy to one worker's partitions.

    The runtime lends it what it needs: its consumer, its assignment, its PostgreSQL session,
    and its ways to load stored offsets, seek, and forget a failure hold.
    """

    def __init__(
        self,
        config: ConsumerSettings,
        group: str,
        log: Any,
        *,
        consumer: Callable[[], KafkaConsumer],
        assignment: Assignment,
        connection: Callable[[], psycopg.Connection[Any]],
        load_positions: Callable[[Sequence[Coordinates]], Mapping[Coordinates, int | None] | None],
        seek: Callable[[Coordinates, int | None], None],
        forget_hold: Callable[[Coordinates], object],
    ) -> None:
        self._config = config
        self._group = group
        self._log = log
        self._consumer = consumer
        self._assignment = assignment
        self._connection = connection
        self._load_positions = load_positions
        self._seek = seek
        self._forget_hold = forget_hold
        self._parked = Parked(config.out_of_range_recheck_s)

    def __contains__(self, where: object) -> bool:
        return where in self._parked

    def release(self, partitions: Iterable[Coordinates]) -> None:
        """Forget held partitions (revoked or lost)."""
        self._parked.release(partitions)

    def check(self, where: Coordinates, stored: int | None, *, cached: bool) -> OutOfRange | None:
        """Compare ``stored`` with the partition's watermarks (cached: from the last fetch)."""
        if stored is None:
            return None
        try:
            watermarks = self._consumer().watermarks(where[0], where[1], timeout=10, cached=cached)
        except KafkaException as exc:
            self._log.warning(
                "watermarks unavailable", topic=where[0], partition=where[1], reason=str(exc)
            )
            return None
        return out_of_range(where, stored, watermarks)

    def on_assign(self, start: dict[Coordinates, int | None]) -> list[OutOfRange]:
        """Check newly assigned partitions; reset ``start`` in place or return those to hold.

        The caller assigns every partition, then ``park``s the ones returned.
        """
        held = []
        for where, stored in list(start.items()):
            found = self.check(where, stored, cached=False)
            if found is None:
                continue
            if self.reset(found):
                start[where] = found.log_start
            else:
                held.append(found)
        return held

    def within(self, records: list[Record]) -> list[Record]:
        """Drop the records of partitions found out of range; apply the policy to those.

        Only a partition whose first record is not at its position is checked (with the cached
        watermarks, no broker call): retention overtook it, or its topic was created again.
        """
        firsts: dict[Coordinates, int] = {}
        for record in records:
            firsts.setdefault((record.topic(), record.partition()), record.offset())
        positions = self._assignment.positions
        stopped = set()
        for where, first in firsts.items():
            position = positions.get(where)
            if position is None or first == position:
                continue
            found = self.check(where, position, cached=True)
            if found is None:
                continue
            stopped.add(where)
            if self.reset(found):
                self._seek(where, found.log_start)  # this batch's records come again
            else:
                self.park(found)
        if not stopped:
            return records
        return [r for r in records if (r.topic(), r.partition()) not in stopped]

    def reset(self, found: OutOfRange) -> bool:
        """Under the ``reset`` policy, move the stored offset to the log start; True if moved."""
        if self._config.offset_out_of_range != "reset":
            return False
        move = OffsetMove(found.topic, found.partition, found.stored, found.log_start)
        conn: psycopg.Connection[Any] | None = None
        try:
            conn = self._connection()
            with conn.cursor() as cursor:
                offsets.compare_and_set(cursor, self._group, [move])
            conn.commit()
        except (FencedError, RetriableError, psycopg.Error) as exc:
            _rollback(conn)
            self._log.warning("out-of-range reset failed, holding", reason=str(exc).strip())
            return False
        self._assignment.own({found.where: found.log_start})
        self._log.warning(
            "stored offset out of range, reset to the log start",
            reason=found.reason,
            policy="reset",
            skipped=max(0, found.log_start - found.stored),
            **found.fields(),
        )
        return True

    def park(self, found: OutOfRange) -> None:
        """Hold a partition whose stored offset is out of range until an operator moves it."""
        self._forget_hold(found.where)
        self._parked.park(found.where)
        self._consumer().pause([found.where])
        self._log.error(
            "stored offset out of range, partition held",
            reason=found.reason,
            policy=self._config.offset_out_of_range,
            recheck_in_s=self._config.out_of_range_recheck_s,
            fix=f"oncepipe offsets reset --group {self._group} --topic {found.topic} "
            f"--partition {found.partition} --to earliest|<offset> (--force while workers run)",
            **found.fields(),
        )

    def recheck(self) -> None:
        """Look again at held partitions whose check is due: resume those back in the log."""
        for where in self._parked.due():
            if where not in self._assignment:
                self._parked.release([where])
                continue
            loaded = self._load_positions([where])
            if loaded is None:
                return  # stopping
            stored = loaded[where]
            found = self.check(where, stored, cached=False)
            if found is not None and not self.reset(found):
                self.park(found)  # logs it again
                continue
            self._parked.release([where])
            if found is None:
                self._assignment.own({where: stored})
                self._log.info(
                    "partition back in range, resumed",
                    topic=where[0],
                    partition=where[1],
                    offset=stored,
                )
            # Resume before seeking: a seek that falls back to re-assigning undoes a pause.
            self._consumer().resume([where])
            self._seek(where, self._assignment.positions[where])


def _rollback(conn: psycopg.Connection[Any] | None) -> None:
    if conn is None or conn.closed:
        return
    try:
        conn.rollback()
    except psycopg.Error:
        conn.close()
