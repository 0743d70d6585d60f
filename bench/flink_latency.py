"""End-to-end latency of the Flink peer and of oncepipe's worker at a fixed rate.

This process produces fresh click events (no duplicates) straight into a topic at ``rate``
events/s and notes each one's produce time; a poller reads which rows became visible in
PostgreSQL every 50 ms (per partition, the rows past the highest offset seen so far: both sides
commit a partition's rows in offset order) and notes when. Latency = first seen - produced, so
it includes the poll's resolution (25 ms on average), the same for both sides. Flink's rows
become visible only when the checkpoint that covers them completes and its XA transaction
commits, so its latency follows the checkpoint interval; oncepipe's follows its batch timeout.

Public names: ``measure_latency``, ``percentiles``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.events import make_events
from oncepipe.kafka import create_producer
from oncepipe.settings import Settings
from schemas import Codec

__all__ = ["measure_latency", "percentiles"]

_POLL_S = 0.05


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of ``latencies_ms``, rounded to 0.1 ms."""
    ordered = sorted(latencies_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


class _Poller(threading.Thread):
    """Notes when each row of ``group`` became visible."""

    def __init__(self, url: str, table: str, group: str) -> None:
        super().__init__(daemon=True)
        self._url, self._group = url, group
        self._sql = (
            f'SELECT t.partition, t."offset", t.event_id::text FROM {table} AS t'
            f' WHERE t.consumer_group = %s AND t."offset" > coalesce('
            "(%s::jsonb ->> t.partition::text)::bigint, -1)"
        )
        self.seen: dict[str, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        marks: dict[int, int] = {}
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._done.is_set():
                rows = conn.execute(self._sql, (self._group, Jsonb(marks))).fetchall()
                now = time.time()
                for partition, offset, event_id in rows:
                    self.seen.setdefault(event_id, now)
                    marks[partition] = max(marks.get(partition, -1), offset)
                self._done.wait(_POLL_S)

    def stop(self) -> None:
        self._done.set()
        self.join(10)


def measure_latency(
    settings: Settings,
    url: str,
    *,
    topic: str,
    group: str,
    table: str,
    rate: int,
    seconds: float,
    ready: Callable[[], None],
) -> dict[str, Any]:
    """Produce ``rate`` events/s for ``seconds`` (after ``ready``: one warm-up event seen)."""
    codec = Codec.load()
    producer = create_producer(settings, {"linger.ms": 0})
    poller = _Poller(url, table, group)
    poller.start()
    try:
        warm = make_events("click", 1)[0].model_copy(update={"event_id": uuid.uuid4()})
        producer.produce(topic, value=codec.encode(warm).value, key=codec.encode(warm).key)
        producer.flush(30)
        ready()
        deadline = time.monotonic() + 120
        while str(warm.event_id) not in poller.seen:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up event was not visible within 120 s")
            time.sleep(_POLL_S)
        count = int(rate * seconds)
        events = [
            e.model_copy(update={"event_id": uuid.uuid4()}) for e in make_events("click", count)
        ]
        encoded = [codec.encode(e) for e in events]
        produced: dict[str, float] = {}
        start = time.perf_counter()
        for n, (event, value) in enumerate(zip(events, encoded, strict=True)):
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            producer.produce(topic, value=value.value, key=value.key)
            produced[str(event.event_id)] = time.time()
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + seconds + 90
        while not produced.keys() <= poller.seen.keys() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
    finally:
        poller.stop()
    latencies = [(poller.seen[k] - t) * 1000 for k, t in produced.items() if k in poller.seen]
    return {
        "events": len(produced),
        "missing": len(produced) - len(latencies),
        **percentiles(latencies),
    }
