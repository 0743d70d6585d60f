"""Prometheus metrics of a worker, fed by its hooks (``oncepipe.hooks``).

``WorkerMetrics`` is a ``Hooks``: the consumer runtime and the relay call it on their own
thread, where it only bumps counters (no I/O, no lock held for long). Everything that needs a
database or broker read (lag from the stored offsets, the outbox backlog) is a collector run
at scrape time on the metrics server's thread (``oncepipe.health``), never in the loop.

Names start with ``oncepipe_``, values are in base units (seconds, records, rows), labels are
few and bounded (group, topic, partition, outcome, reason, stage).

Public names: ``MetricsSettings``, ``load_metrics_settings``, ``WorkerMetrics``,
``ScrapeCollector``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from oncepipe.hooks import (
    BatchCommitted,
    BatchFailed,
    BatchStarted,
    NoHooks,
    RecordDeadLettered,
    RowsPublished,
)
from oncepipe.settings import read_settings

__all__ = [
    "MetricsSettings",
    "ScrapeCollector",
    "WorkerMetrics",
    "load_metrics_settings",
]

BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MetricsSettings(BaseSettings):
    """The metrics and health endpoint of one worker (``ONCEPIPE_METRICS_*``)."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_METRICS_", frozen=True, extra="ignore")

    port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics, /livez, /readyz here; off when unset"
    )
    host: str = Field("0.0.0.0", description="address the endpoint listens on")  # noqa: S104
    liveness_s: float = Field(
        60.0, gt=0, description="/livez fails when the loop made no progress this long"
    )
    probe_timeout_s: float = Field(
        2.0, gt=0, le=30, description="how long /readyz waits for PostgreSQL and the broker"
    )


def load_metrics_settings(**flags: Any) -> MetricsSettings:
    """Metrics settings from ``ONCEPIPE_METRICS_*`` with the given flags on top."""
    return read_settings(MetricsSettings, flags, what="metrics settings")


class WorkerMetrics(NoHooks):
    """Counters and histograms a worker's hooks feed; also the loop's last progress time."""

    def __init__(self, registry: CollectorRegistry, group: str = "") -> None:
        self.registry = registry
        self.group = group
        self.last_progress = time.monotonic()
        self.looping = False
        """True once the loop went round: subscribed, assigned or waiting for an assignment."""
        self._batch_started = 0.0
        self._freshness: dict[tuple[str, str, int], float] = {}
        self._lock = threading.Lock()
        r = registry
        self.records = Counter(
            "oncepipe_consumer_records", "Records a consumer went past, by outcome: applied, "
            "duplicate (already in the inbox), dead_lettered, retried (a failure counted, "
            "the partition held for a retry)", ["group", "outcome"], registry=r,
        )  # fmt: skip
        self.batch_records = Histogram(
            "oncepipe_consumer_batch_records", "Events per committed batch", ["group"],
            buckets=BATCH_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_duration = Histogram(
            "oncepipe_consumer_batch_duration_seconds",
            "From a batch's first statement to its COMMIT", ["group"],
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_failures = Counter(
            "oncepipe_consumer_batch_failures", "Batches rolled back and re-read, by reason: "
            "fenced (another worker owns a partition) or transient (database, broker)",
            ["group", "reason"], registry=r,
        )  # fmt: skip
        self.holds = Counter(
            "oncepipe_consumer_partition_holds", "Partitions a batch held at a record that may "
            "still succeed", ["group"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "oncepipe_consumer_dead_letters", "Dead letters committed, by source topic and the "
            "stage that failed (decode, validate, handle)", ["group", "topic", "stage"],
            registry=r,
        )  # fmt: skip
        self.emitted = Counter(
            "oncepipe_consumer_emitted_events", "Derived events handlers wrote to the outbox",
            ["group"], registry=r,
        )  # fmt: skip
        self.progress = Gauge(
            "oncepipe_worker_last_progress_timestamp_seconds",
            "When the worker's loop last went round (Unix time)",
            registry=r,
        )
        self.published = Counter(
            "oncepipe_relay_rows_published", "Outbox rows the broker acknowledged", registry=r
        )
        self.publish_failures = Counter(
            "oncepipe_relay_publish_failures", "Outbox rows a pass could not publish (held for "
            "a retry)", registry=r,
        )  # fmt: skip
        self.publish_duration = Histogram(
            "oncepipe_relay_publish_duration_seconds", "One relay pass: from sending its records "
            "to their last acknowledgement", buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.delivery_failures = Counter(
            "oncepipe_producer_delivery_failures", "Records the broker did not acknowledge",
            registry=r,
        )  # fmt: skip
        self.schema_lookups = Counter(
            "oncepipe_schema_lookups", "Schema-store look-ups of unknown fingerprints, by "
            "outcome: found, missing, error", ["outcome"], registry=r,
        )  # fmt: skip
        registry.register(_FreshnessCollector(self))
        self.progress.set_to_current_time()

    # -- hooks, on the worker's thread -----------------------------------------------------

    def heartbeat(self) -> None:
        """The loop went round."""
        self.looping = True
        self.last_progress = time.monotonic()
        self.progress.set_to_current_time()

    def point(self, name: str) -> None:
        """Counts failures the retry policy recorded (the record will be retried)."""
        if name == "consumer.after_failure_counted":
            self.records.labels(self.group, "retried").inc()

    def batch_started(self, batch: BatchStarted) -> None:
        """Starts the batch's clock."""
        self._batch_started = time.perf_counter()

    def batch_committed(self, batch: BatchCommitted) -> None:
        """Outcomes, size, duration, holds and freshness of a committed batch."""
        group = batch.group
        self.batch_duration.labels(group).observe(time.perf_counter() - self._batch_started)
        self.batch_records.labels(group).observe(batch.events + batch.dead_letters)
        self.records.labels(group, "applied").inc(batch.applied)
        self.records.labels(group, "duplicate").inc(batch.duplicates)
        if batch.emitted:
            self.emitted.labels(group).inc(batch.emitted)
        if batch.held_partitions:
            self.holds.labels(group).inc(batch.held_partitions)
        if batch.freshness:
            with self._lock:
                for fresh in batch.freshness:
                    self._freshness[(group, fresh.topic, fresh.partition)] = fresh.produced_at
        self.heartbeat()

    def record_dead_lettered(self, record: RecordDeadLettered) -> None:
        """One dead letter committed."""
        self.records.labels(record.group, "dead_lettered").inc()
        self.dead_letters.labels(record.group, record.topic, record.stage or "unknown").inc()

    def batch_failed(self, batch: BatchFailed) -> None:
        """A batch rolled back."""
        self.batch_failures.labels(batch.group, batch.reason).inc()

    def rows_published(self, rows: RowsPublished) -> None:
        """A relay pass."""
        self.published.inc(rows.rows)
        self.publish_duration.observe(rows.seconds)
        if rows.held:
            self.publish_failures.inc(rows.held)
            self.delivery_failures.inc(rows.held)

    # -- for collectors and probes -----------------------------------------------------------

    def freshness(self) -> list[tuple[tuple[str, str, int], float]]:
        """(group, topic, partition) and the production time of its last applied event."""
        with self._lock:
            return sorted(self._freshness.items())

    def stalled_for(self) -> float:
        """Seconds since the loop last went round."""
        return time.monotonic() - self.last_progress

    def counting_lookup(self, lookup: Callable[[str], Any]) -> Callable[[str], Any]:
        """``lookup`` (a schema-store look-up) counted by outcome."""

        def counted(fingerprint: str) -> Any:
            try:
                found = lookup(fingerprint)
            except Exception:
                self.schema_lookups.labels("error").inc()
                raise
            self.schema_lookups.labels("missing" if found is None else "found").inc()
            return found

        return counted


class _FreshnessCollector(Collector):
    """Now minus the production time of the last applied event, per partition."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["group", "topic", "partition"]
        age = GaugeMetricFamily(
            "oncepipe_consumer_freshness_seconds",
            "Now minus produced_at of the last event applied on the partition",
            labels=labels,
        )
        stamp = GaugeMetricFamily(
            "oncepipe_consumer_last_applied_produced_timestamp_seconds",
            "produced_at of the last event applied on the partition (Unix time)",
            labels=labels,
        )
        now = time.time()
        for (group, topic, partition), produced in self._metrics.freshness():
            values = [group, topic, str(partition)]
            age.add_metric(values, max(now - produced, 0.0))
            stamp.add_metric(values, produced)
        yield age
        yield stamp


Families = Callable[[], Iterable[GaugeMetricFamily]]


class ScrapeCollector(Collector):
    """Runs ``read`` at each scrape (database and broker reads, off the worker's loop).

    A failed read yields ``<name>_up 0`` and no other family, so a scrape never fails.
    """

    def __init__(self, name: str, read: Families, on_error: Callable[[Exception], None]) -> None:
        self._name = name
        self._read = read
        self._on_error = on_error

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """``<name>_up`` and the families ``read`` returned (none when it failed)."""
        up = GaugeMetricFamily(
            f"{self._name}_up", "1 when the last scrape's database and broker reads succeeded"
        )
        try:
            families = list(self._read())
        except Exception as exc:  # noqa: BLE001 - reported on the scrape and in the log
            self._on_error(exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Nothing up front: the registry must not run the reads when it registers this."""
        return iter(())
