"""Wires a worker's metrics and health endpoint: ``--metrics-port`` / ``ONCEPIPE_METRICS_PORT``.

Off when no port is given: the worker then runs with its plain hooks and no extra thread.
On: a ``WorkerMetrics`` joins the worker's hooks, and the endpoint's thread reads what the
loop must not wait for (the stored offsets against the broker's high watermarks, the outbox
backlog, the probes' database and broker checks) with short timeouts, on its own connections.

Public names: ``METRICS_PORT``, ``Observed``, ``observe_consumer``, ``observe_relay``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import typer
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from consumers import read_progress
from oncepipe.errors import ConfigError, first_line
from oncepipe.health import Endpoint, serve
from oncepipe.hooks import FanOut, Hooks
from oncepipe.kafka import KafkaConsumer
from oncepipe.logging import get_logger
from oncepipe.metrics import MetricsSettings, ScrapeCollector, WorkerMetrics
from oncepipe.settings import Settings
from producers import read_backlog

__all__ = ["METRICS_PORT", "Observed", "observe_consumer", "observe_relay"]

METRICS_PORT = typer.Option(
    None,
    "--metrics-port",
    help="serve /metrics (Prometheus), /livez and /readyz on this port; off when unset "
    "[env ONCEPIPE_METRICS_PORT]",
)

log = get_logger("metrics")


@dataclass
class Observed:
    """The hooks to give the worker, its metrics (None when off), and the endpoint to close."""

    hooks: Hooks
    metrics: WorkerMetrics | None = None
    endpoint: Endpoint | None = None

    def close(self) -> None:
        """Stop the endpoint, if one runs."""
        if self.endpoint is not None:
            self.endpoint.close()


class _Reads:
    """The endpoint's own database sessions and broker client, never shared with the loop.

    Concurrent scrapes and probes take turns on the broker client.
    """

    def __init__(self, settings: Settings, metrics: MetricsSettings, name: str) -> None:
        self._settings = settings
        self._timeout = metrics.probe_timeout_s
        self._name = name
        self._lock = threading.Lock()
        self._kafka: KafkaConsumer | None = None

    @contextmanager
    def database(self) -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(
            self._settings.database_url.get_secret_value(),
            connect_timeout=max(1, math.ceil(self._timeout)),
            application_name=self._name,
            autocommit=True,
            prepare_threshold=None,  # a short-lived session: nothing to gain from preparing
        )
        # Transaction-local: behind a transaction-pooling PgBouncer a session setting would
        # stay on a server connection that other clients are handed next.
        with conn, conn.transaction():
            conn.execute(f"SET LOCAL statement_timeout = {int(self._timeout * 1000)}")
            yield conn

    def high_watermark(self, topic: str, partition: int) -> int:
        with self._lock:
            return self._client().watermarks(topic, partition, timeout=self._timeout)[1]

    def broker_reachable(self) -> None:
        with self._lock:
            self._client().list_topics(timeout=self._timeout)

    def _client(self) -> KafkaConsumer:
        if self._kafka is None:
            # Never subscribes nor commits: the group id only satisfies the client.
            self._kafka = KafkaConsumer.create(self._settings, self._name)
        return self._kafka


def _readyz(metrics: WorkerMetrics, reads: _Reads) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        if not metrics.looping:
            return False, "the worker has not started its loop yet"
        try:
            with reads.database() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return False, f"PostgreSQL unreachable: {first_line(exc)}"
        try:
            reads.broker_reachable()
        except Exception as exc:  # noqa: BLE001 - any client error means not reachable
            return False, f"Kafka unreachable: {first_line(exc)}"
        return (
            True,
            "loop running (assigned or waiting for an assignment), PostgreSQL and Kafka reachable",
        )

    return check


def _livez(metrics: WorkerMetrics, bound_s: float) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        stalled = metrics.stalled_for()
        if stalled > bound_s:
            return False, f"the loop made no progress for {stalled:.1f}s (bound {bound_s:g}s)"
        return True, f"the loop made progress {stalled:.1f}s ago"

    return check


def _start(
    settings: Settings,
    config: MetricsSettings,
    worker_hooks: Hooks,
    *,
    name: str,
    group: str,
    read: Callable[[_Reads], Any],
) -> Observed:
    if config.port is None:
        return Observed(worker_hooks)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, group)
    reads = _Reads(settings, config, name)
    registry.register(
        ScrapeCollector(
            "oncepipe_scrape_reads",
            lambda: read(reads),
            lambda exc: log.warning("metrics read failed", reason=first_line(exc)),
        )
    )
    try:
        endpoint = serve(
            config.host,
            config.port,
            registry,
            livez=_livez(metrics, config.liveness_s),
            readyz=_readyz(metrics, reads),
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {config.host}:{config.port} ({exc.strerror or exc}); "
            "choose another --metrics-port (ONCEPIPE_METRICS_PORT)"
        ) from None
    log.info("metrics endpoint listening", host=config.host, port=endpoint.port)
    return Observed(FanOut(worker_hooks, metrics), metrics, endpoint)


def observe_consumer(
    settings: Settings, config: MetricsSettings, worker_hooks: Hooks, group: str
) -> Observed:
    """Metrics of a consumer worker of ``group``: lag per partition from the stored offsets."""

    def read(reads: _Reads) -> list[GaugeMetricFamily]:
        labels = ["group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "oncepipe_consumer_lag_records",
            "High watermark minus the offset stored in PostgreSQL",
            labels=labels,
        )
        stored = GaugeMetricFamily(
            "oncepipe_consumer_stored_offset", "Next offset stored in PostgreSQL", labels=labels
        )
        high = GaugeMetricFamily(
            "oncepipe_consumer_high_watermark", "The partition's high watermark", labels=labels
        )
        committed = GaugeMetricFamily(
            "oncepipe_consumer_last_commit_timestamp_seconds",
            "When the stored offset last moved (Unix time)",
            labels=labels,
        )
        with reads.database() as conn:
            progress = read_progress(conn, reads.high_watermark, group)
        for row in progress:
            values = [row.group, row.topic, str(row.partition)]
            stored.add_metric(values, row.stored_offset)
            committed.add_metric(values, row.committed_at.timestamp())
            if row.high_watermark is not None and row.lag is not None:
                high.add_metric(values, row.high_watermark)
                lag.add_metric(values, row.lag)
        return [lag, stored, high, committed]

    return _start(
        settings, config, worker_hooks, name=f"oncepipe-metrics:{group}", group=group, read=read
    )


def observe_relay(settings: Settings, config: MetricsSettings, worker_hooks: Hooks) -> Observed:
    """Metrics of a relay: the outbox backlog and the age of its oldest row."""

    def read(reads: _Reads) -> list[GaugeMetricFamily]:
        with reads.database() as conn:
            backlog = read_backlog(conn)
        pending = GaugeMetricFamily("oncepipe_outbox_pending_rows", "Outbox rows not yet published")
        pending.add_metric([], backlog.pending)
        age = GaugeMetricFamily(
            "oncepipe_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none)",
        )
        age.add_metric([], backlog.oldest_age_s)
        held = GaugeMetricFamily(
            "oncepipe_outbox_held_partitions", "Partitions the relay holds for a retry"
        )
        held.add_metric([], len(backlog.held))
        return [pending, age, held]

    return _start(
        settings, config, worker_hooks, name="oncepipe-metrics:relay", group="", read=read
    )
