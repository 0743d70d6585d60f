"""Which partitions this worker owns and the next offset it may apply in each.

Rebalance callbacks change it (inside ``consume()``); the loop reads it to drop records it must
not apply: from partitions it no longer owns, or from before a position it was moved to.

Public names: ``Assignment``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from consumers.events import Coordinates
from consumers.offsets import OffsetMove

__all__ = ["Assignment"]


class Assignment:
    """Owned partitions and their positions (None: no stored offset, start at the reset)."""

    def __init__(self) -> None:
        self._positions: dict[Coordinates, int | None] = {}

    def __contains__(self, where: object) -> bool:
        return where in self._positions

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def positions(self) -> Mapping[Coordinates, int | None]:
        """Owned partitions and the next offset to apply (a read-only view)."""
        return dict(self._positions)

    def own(self, positions: Mapping[Coordinates, int | None]) -> None:
        """Start owning partitions at the stored positions."""
        self._positions.update(positions)

    def release(self, partitions: Iterable[Coordinates]) -> list[Coordinates]:
        """Stop owning partitions; return those that were owned."""
        released = [where for where in partitions if where in self._positions]
        for where in released:
            del self._positions[where]
        return released

    def clear(self) -> None:
        """Own nothing."""
        self._positions.clear()

    def advance(self, moves: Iterable[OffsetMove]) -> None:
        """Record committed moves."""
        for move in moves:
            where = (move.topic, move.partition)
            if where in self._positions:
                self._positions[where] = move.next_offset

    def admit(self, records: Sequence[Any]) -> list[Any]:
        """The records this worker may apply, grouped by partition, each in offset order.

        A record is dropped when its partition is not owned (revoked or lost during the
        ``consume()`` call that returned it) or when it lies below the partition's position
        (fetched before a seek). Offsets above the position are fine: transaction markers and
        compaction leave gaps.
        """
        kept: dict[Coordinates, list[Any]] = {}
        for record in records:
            where = (record.topic(), record.partition())
            if where not in self._positions:
                continue
            position = self._positions[where]
            if position is not None and record.offset() < position:
                continue
            bucket = kept.setdefault(where, [])
            if bucket and record.offset() <= bucket[-1].offset():
                continue
            bucket.append(record)
        return [record for where in sorted(kept) for record in kept[where]]
