"""Prometheus metrics of the ingest server, served at ``/metrics`` on its own port.

In the workers' style (``oncepipe.metrics``): names start with ``oncepipe_``, values are in
base units, labels are few and bounded (client names come from the clients file, event types
from the registry, statuses from what the server answers).

Public names: ``IngestMetrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["IngestMetrics"]

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class IngestMetrics:
    """Counters and a histogram the access log feeds, one request at a time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "oncepipe_ingest_requests", "Event posts answered, by client and HTTP status "
            "(client is empty before authentication)", ["client", "status"], registry=r,
        )  # fmt: skip
        self.replays = Counter(
            "oncepipe_ingest_replays", "Retries answered with the stored response",
            ["client"], registry=r,
        )  # fmt: skip
        self.events = Counter(
            "oncepipe_ingest_events", "Events accepted and queued in the outbox (replays not "
            "counted)", ["client", "event_type"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "oncepipe_ingest_request_duration_seconds", "From a post's arrival to its answer",
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip

    def observe(
        self,
        status: int,
        seconds: float,
        *,
        client: str,
        event_type: str,
        events: int,
        replay: bool,
    ) -> None:
        """Count one answered post."""
        self.requests.labels(client, str(status)).inc()
        self.duration.observe(seconds)
        if replay:
            self.replays.labels(client).inc()
        elif status == 202 and events:
            self.events.labels(client, event_type).inc(events)

    def exposition(self) -> bytes:
        """The text format of every metric, for ``/metrics``."""
        return generate_latest(self.registry)
