"""What a queue-mode worker saw of its share group: acquired, in flight, acknowledged...

The client has no share-group admin API, so these counts are the workers' own view. They feed
the Prometheus registry when the worker serves metrics.

Public names: ``QueueCounts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

__all__ = ["QueueCounts"]

_HELP = {
    "acquired": "Records the share group handed this worker (each under a lock)",
    "acknowledged": "Records accepted after their batch committed (or dead-lettered)",
    "released": "Records given back for redelivery (a failed batch, the batch deadline)",
    "redelivered": "Records acquired with a delivery count above 1",
    "refused": "Acknowledgements the broker refused (the lock had expired)",
}


@dataclass
class QueueCounts:
    """Counters of one worker, mirrored into Prometheus when a registry is given."""

    group: str
    registry: Any = None
    acquired: int = 0
    in_flight: int = 0
    acknowledged: int = 0
    released: int = 0
    redelivered: int = 0
    refused: int = 0
    _metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.registry is None:
            return
        for name, text in _HELP.items():
            self._metrics[name] = Counter(
                f"oncepipe_queue_{name}_records", text, ["group"], registry=self.registry
            )
        self._metrics["in_flight"] = Gauge(
            "oncepipe_queue_in_flight_records",
            "Records acquired and not acknowledged yet",
            ["group"],
            registry=self.registry,
        )

    def add(self, name: str, count: int) -> None:
        """Add ``count`` to counter ``name`` (one of acquired, acknowledged, released...)."""
        if not count:
            return
        setattr(self, name, getattr(self, name) + count)
        if name in ("acquired", "acknowledged", "released"):
            delta = count if name == "acquired" else -count
            self.in_flight += delta
            if "in_flight" in self._metrics:
                self._metrics["in_flight"].labels(self.group).set(self.in_flight)
        if name in self._metrics:
            self._metrics[name].labels(self.group).inc(count)

    def snapshot(self) -> dict[str, int]:
        """The counts as they are now."""
        return {
            "acquired": self.acquired,
            "in_flight": self.in_flight,
            "acknowledged": self.acknowledged,
            "released": self.released,
            "redelivered": self.redelivered,
            "refused": self.refused,
        }
