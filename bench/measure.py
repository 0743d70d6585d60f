"""Timing primitives: wall and CPU seconds of one run, and the median and spread of runs.

CPU is reported for the benchmark process (``time.process_time``: every thread, so
librdkafka's too) and, where the service processes can be found, for PostgreSQL and the Kafka
broker (``/proc``), so a figure that saves client CPU by spending server CPU shows it. Peak
resident memory of the same three (``bench.services``) is reset at the start and read at the
end of each run.

Public names: ``Sample``, ``Stopwatch``, ``summarise``, ``ratio``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.services import ServiceCpu

__all__ = ["Sample", "Stopwatch", "ratio", "summarise"]


@dataclass(frozen=True)
class Sample:
    """One timed run: how much work, how long, how much CPU."""

    events: int
    wall_s: float
    cpu_s: float
    payload_bytes: int = 0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON results."""
        return asdict(self)


class Stopwatch:
    """Context manager timing a block: ``with Stopwatch() as sw: ...; sw.sample(n)``."""

    def __init__(self, services: ServiceCpu | None = None) -> None:
        self._services = services
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.server_cpu_s: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    def __enter__(self) -> Stopwatch:
        if self._services:
            self._services.reset_peak_rss()
        self._server = self._services.snapshot() if self._services else {}
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        if self._services:
            after = self._services.snapshot()
            self.server_cpu_s = {k: after[k] - v for k, v in self._server.items() if k in after}
            self.peak_rss_mb = self._services.peak_rss_mb()

    def sample(
        self, events: int, payload_bytes: int = 0, extra: dict[str, float] | None = None
    ) -> Sample:
        """The finished block as a ``Sample`` of ``events`` events."""
        return Sample(
            events,
            self.wall_s,
            self.cpu_s,
            payload_bytes,
            dict(self.server_cpu_s),
            extra or {},
            dict(self.peak_rss_mb),
        )


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(samples: list[Sample]) -> dict[str, Any]:
    """Median, min and max of the rates and per-event costs over ``samples``."""
    summary: dict[str, Any] = {
        "runs": len(samples),
        "events_per_s": _spread([s.events / s.wall_s for s in samples]),
        "wall_us_per_event": _spread([s.wall_s / s.events * 1e6 for s in samples]),
        "cpu_us_per_event": _spread([s.cpu_s / s.events * 1e6 for s in samples]),
    }
    if all(s.payload_bytes for s in samples):
        summary["mb_per_s"] = _spread([s.payload_bytes / s.wall_s / 1e6 for s in samples])
    for name in samples[0].server_cpu_s:
        if all(name in s.server_cpu_s for s in samples):
            summary[f"{name}_cpu_us_per_event"] = _spread(
                [s.server_cpu_s[name] / s.events * 1e6 for s in samples]
            )
    for name in samples[0].peak_rss_mb:
        if all(name in s.peak_rss_mb for s in samples):
            summary[f"{name}_peak_rss_mb"] = _spread([s.peak_rss_mb[name] for s in samples])
    for name in samples[0].extra:
        if all(name in s.extra for s in samples):
            summary[name] = _spread([s.extra[name] for s in samples])
    return summary


def ratio(candidate: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Candidate over baseline, of the medians: throughput and CPU per event."""
    return {
        "events_per_s": candidate["events_per_s"]["median"] / baseline["events_per_s"]["median"],
        "cpu_us_per_event": candidate["cpu_us_per_event"]["median"]
        / baseline["cpu_us_per_event"]["median"],
    }
