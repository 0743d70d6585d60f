"""Watching the pipeline from outside: records on a topic, and when oncepipe has settled.

Public names: ``Watch``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from consumers import offsets
from oncepipe.kafka import KafkaConsumer, TopicPartition
from oncepipe.settings import Settings
from producers import pending_count

__all__ = ["Watch"]


class Watch:
    """Reads topic watermarks, stored offsets and the outbox; one Kafka client for the run."""

    def __init__(self, settings: Settings, conn: Any) -> None:
        self._conn = conn
        self._settings = settings
        # Watermarks only: never subscribes, so the group id names nobody's position.
        self._consumer = KafkaConsumer.create(settings, "oncepipe-demo")

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._consumer.close()

    def end_offsets(self, topic: str) -> dict[int, tuple[int, int]]:
        """Each partition's (low, high) watermarks."""
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: self._consumer.watermarks(topic, p, timeout=10) for p in partitions}

    def records(self, topic: str) -> int:
        """How many records ``topic`` holds."""
        return sum(high - low for low, high in self.end_offsets(topic).values())

    def settled(self, group: str, topic: str) -> bool:
        """True once ``group`` consumed ``topic`` to its end and every dead letter is published.

        The outbox is checked before the watermarks (so they include every event the relay
        had published) and again after the stored offsets (so the dead letters written in
        the batches that reached the end are on their topic too).
        """
        if pending_count(self._conn):
            return False
        ends = self.end_offsets(topic)
        with self._conn.cursor() as cursor:
            stored = offsets.load(cursor, group, [(topic, p) for p in ends])
        if any((stored[(topic, p)] or 0) < high for p, (_, high) in ends.items()):
            return False
        return pending_count(self._conn) == 0

    def committed_to_end(self, group: str, topic: str) -> bool:
        """True once Kafka holds ``group``'s committed offsets at the end of ``topic``.

        For an auto-committing consumer: it has been handed every record (offsets are stored
        as records are handed over), though it may still be applying the last ones.
        """
        ends = self.end_offsets(topic)
        reader = KafkaConsumer.create(self._settings, group)
        try:  # a read of the group's offsets, not a membership: nobody is rebalanced
            committed = reader.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        finally:
            reader.close()
        # An empty partition has nothing to commit (its committed offset stays invalid, < 0).
        return all(
            tp.offset >= ends[tp.partition][1] or ends[tp.partition][0] == ends[tp.partition][1]
            for tp in committed
        )

    @staticmethod
    def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it holds; raise after ``timeout`` seconds naming ``what``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"timed out after {timeout:.0f}s waiting for {what}; see the worker logs"
        )
