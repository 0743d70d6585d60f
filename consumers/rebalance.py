"""The group protocol's callbacks for one worker: own what is assigned, let go of the rest.

They run inside ``consume()`` and ``close()`` only, between batches (see ``ConsumerRuntime``).

Public names: ``Rebalance``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumers.assignment import Assignment
from consumers.bounds import LogBounds
from consumers.events import Coordinates
from consumers.holds import Holds
from oncepipe.kafka import KafkaConsumer, TopicPartition

__all__ = ["Rebalance"]


class Rebalance:
    """Assigns partitions at their stored offsets and forgets revoked or lost ones.

    The runtime lends it its consumer, assignment, holds and log bounds, a way to load and
    claim stored offsets, and the start offset of a partition with none stored. An error
    while loading them is kept for ``raise_error``: raised inside a callback, librdkafka would
    swallow it.
    """

    def __init__(
        self,
        *,
        consumer: Callable[[], KafkaConsumer],
        assignment: Assignment,
        holds: Holds,
        bounds: LogBounds,
        claim_positions: Callable[[Sequence[Coordinates]], Mapping[Coordinates, int | None] | None],
        start_offset: Callable[[int | None, Coordinates], int],
        log: Any,
    ) -> None:
        self._consumer = consumer
        self._assignment = assignment
        self._holds = holds
        self._bounds = bounds
        self._claim_positions = claim_positions
        self._start_offset = start_offset
        self._log = log
        self._error: BaseException | None = None

    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Own the assigned partitions from their stored offsets (claimed for this worker)."""
        wanted = [(tp.topic, tp.partition) for tp in partitions]
        try:
            positions = self._claim_positions(wanted) if wanted else {}
        except Exception as exc:  # noqa: BLE001 - re-raised by the loop once consume() returns
            self._error = exc
            positions = None
        start = dict(positions or {})
        held = self._bounds.on_assign(start) if positions is not None else []
        self._consumer().incremental_assign(
            [TopicPartition(t, p, self._start_offset(start.get((t, p)), (t, p))) for t, p in wanted]
        )
        if positions is None:
            return  # assigned (librdkafka needs that) but not owned: its records are dropped
        self._assignment.own(start)
        if wanted:
            self._log.info("partitions assigned", partitions=_names(start))
        for found in held:
            self._bounds.park(found)

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Let go of revoked partitions (the batch in flight was committed before)."""
        released = self._release(partitions)
        if released:
            self._log.info("partitions revoked", partitions=[f"{t}[{p}]" for t, p in released])

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        """Let go of lost partitions (another worker may own them already)."""
        released = self._release(partitions)
        self._log.warning("partitions lost", partitions=[f"{t}[{p}]" for t, p in released])

    def raise_error(self) -> None:
        """Raise the error a callback kept, once."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _release(self, partitions: list[TopicPartition]) -> list[Coordinates]:
        released = self._assignment.release((tp.topic, tp.partition) for tp in partitions)
        self._holds.forget(released)
        self._bounds.release(released)
        self._consumer().incremental_unassign(partitions)
        return released


def _names(positions: dict[Coordinates, int | None]) -> dict[str, int | None]:
    return {f"{t}[{p}]": offset for (t, p), offset in sorted(positions.items())}
