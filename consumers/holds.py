"""Held partitions: paused at a record that may still succeed, until their retry time.

Each partition backs off on its own jittered schedule: every hold in a row waits longer, and
a batch that moves the partition on without holding it again starts the schedule over.

Public names: ``Holds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from consumers.assignment import Assignment
from consumers.backoff import Backoff
from consumers.events import Coordinates
from oncepipe.kafka import KafkaConsumer

__all__ = ["Holds"]


class Holds:
    """The partitions one worker holds after a failure, and when each may be tried again.

    The runtime lends it its consumer, its assignment and its way to seek (which resolves a
    missing stored offset to the reset policy).
    """

    def __init__(
        self,
        *,
        consumer: Callable[[], KafkaConsumer],
        assignment: Assignment,
        seek: Callable[[Coordinates, int | None], None],
        retry_initial_s: float,
        retry_max_s: float,
        log: Any,
    ) -> None:
        self._consumer = consumer
        self._assignment = assignment
        self._seek = seek
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._log = log
        self._due: dict[Coordinates, float] = {}
        self._backoffs: dict[Coordinates, Backoff] = {}

    def __contains__(self, where: object) -> bool:
        return where in self._due

    def hold(self, held: Mapping[Coordinates, int]) -> None:
        """Pause each held partition at its held record until a jittered backoff passes."""
        for where, offset in held.items():
            if where not in self._assignment:
                continue
            backoff = self._backoffs.setdefault(
                where, Backoff(self._retry_initial_s, self._retry_max_s)
            )
            delay = backoff.next_delay()
            # Seek first: when seeking falls back to re-assigning, that would undo a pause.
            self._seek(where, offset)
            self._consumer().pause([where])
            self._due[where] = time.monotonic() + delay
            self._log.info(
                "partition held",
                topic=where[0],
                partition=where[1],
                offset=offset,
                retry_in_s=round(delay, 3),
            )

    def resume_due(self) -> None:
        """Resume the held partitions whose retry time has come (those still owned)."""
        now = time.monotonic()
        for where in [w for w, due in self._due.items() if due <= now]:
            del self._due[where]
            if where in self._assignment:
                self._consumer().resume([where])

    def moved_on(self, partitions: Iterable[Coordinates]) -> None:
        """These partitions advanced without a new hold: their next hold waits the least."""
        for where in partitions:
            self._backoffs.pop(where, None)

    def lift(self, where: Coordinates) -> None:
        """Stop timing the hold of ``where`` (it stays paused for another reason)."""
        self._due.pop(where, None)

    def forget(self, partitions: Iterable[Coordinates]) -> None:
        """Forget partitions no longer owned (revoked or lost): their holds and backoffs."""
        for where in partitions:
            self._due.pop(where, None)
            self._backoffs.pop(where, None)
