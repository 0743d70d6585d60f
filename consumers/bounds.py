"""Stored offsets that fell out of the log: a topic recreated, or records gone with retention.

librdkafka would quietly reset such a partition (to the log start, say) and the worker would
then drop every record below the stored offset, or skip what retention deleted, without a word.
The runtime checks the stored offset against the partition's watermarks instead and follows
``ONCEPIPE_CONSUMER_OFFSET_OUT_OF_RANGE``: ``hold`` the partition (paused, logged again every
``out_of_range_recheck_s``) until ``oncepipe offsets reset`` moves the stored offset back into
the log, or ``reset`` it to the log start with a warning.

Public names: ``OutOfRange``, ``Parked``, ``out_of_range``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from consumers.events import Coordinates

__all__ = ["OutOfRange", "Parked", "out_of_range"]


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
