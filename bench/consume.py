"""Consume with exactly-once effects: oncepipe's consumer next to three baselines.

One topic (6 partitions) is filled once per event size; every run reads it from the start
with a fresh consumer group, after the click tables, the inbox and the offsets are emptied.

- ``raw consume + decode``: confluent-kafka ``consume(batch)`` + ``Codec.decode_batch``, no
  database (the ceiling);
- ``at-least-once, batched``: the same decode and the click handler's exact writes (raw rows
  + both counters, one statement) in one transaction per batch, then an asynchronous Kafka
  offset commit; no inbox, no offsets in PostgreSQL: a crash between the two commits applies
  a batch twice;
- ``one transaction per message``: the same writes, one message per transaction;
- ``oncepipe``: ``ConsumerRuntime`` with the click handler: inbox, handler, offsets
  compare-and-set, commit, per batch.

The clock runs from the start of the first batch's writes to the start of the last batch's
(so group joins, the first fetch and shutdown are not timed): the events of every batch in
between completed a whole cycle (consume, decode, write, commit).

Public names: ``run_consume``, ``run_until``, ``Clock``, ``BATCH_SIZES``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.env import BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from consumers.context import HandlerContext
from consumers.decoding import decode_records
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import BatchStarted, NoHooks
from oncepipe.kafka import connection_config
from schemas import Codec

__all__ = ["BATCH_SIZES", "Clock", "run_consume", "run_until"]

BATCH_SIZES = (1, 10, 100, 500, 2000)
PARTITIONS = 6
PER_MESSAGE_EVENTS = 3000
RESET = (
    "TRUNCATE public.click_events, public.item_click_counts, public.user_item_click_counts,"
    " oncepipe.inbox, oncepipe.consumer_offsets"
)
ONCEPIPE = "oncepipe consumer (clicks)"
AT_LEAST_ONCE = "at-least-once, batched (baseline)"
RAW = "raw consume + decode, no DB"
PER_MESSAGE = "one transaction per message"


class Clock:
    """Marks taken at the start of each batch's writes; the first and last bound the run."""

    def __init__(self, services: ServiceCpu, total: int) -> None:
        self._services = services
        self._total = total
        self.marks: list[tuple[int, float, float, dict[str, float]]] = []
        self.events = 0
        self.peak_rss_mb: dict[str, float] = {}

    def mark(self, batch_events: int) -> None:
        """Call at the start of a batch's writes, with that batch's size."""
        # Reading /proc takes milliseconds: only at the first mark and the last one.
        first = not self.marks
        last = first or self.events + batch_events >= self._total
        if first:
            self._services.reset_peak_rss()
        server = self._services.snapshot() if last else {}
        self.marks.append((self.events, time.perf_counter(), time.process_time(), server))
        self.events += batch_events
        if last and not first:
            self.peak_rss_mb = self._services.peak_rss_mb()

    def sample(self) -> Sample:
        """From the first mark to the last: the events of every batch but the last."""
        (n0, w0, c0, s0), (n1, w1, c1, s1) = self.marks[0], self.marks[-1]
        server = {k: s1[k] - v for k, v in s0.items() if k in s1}
        return Sample(n1 - n0, w1 - w0, c1 - c0, 0, server, {}, self.peak_rss_mb)


def _reset(env: BenchEnv) -> None:
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)


def _raw_consumer(env: BenchEnv, topic: str) -> Any:
    consumer = Consumer(
        {
            **connection_config(env.settings),
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return consumer


def _loop(
    env: BenchEnv,
    topic: str,
    *,
    total: int,
    batch: int,
    cpu: ServiceCpu,
    write: Callable[[Any, Sequence[InboundEvent]], None] | None,
    codec: Codec,
) -> Sample:
    """A hand-written consumer: consume, decode, ``write`` (if any), commit to Kafka."""
    _reset(env)
    clock = Clock(cpu, total)
    consumer = _raw_consumer(env, topic)
    conn = env.connect() if write else None
    try:
        while clock.events < total:
            records = [r for r in consumer.consume(batch, 1.0) if r.error() is None]
            if not records:
                continue
            decoded = decode_records(codec, records)
            clock.mark(len(records))
            if write is not None:
                write(conn, decoded.events)
                consumer.commit(asynchronous=True)
    finally:
        consumer.close()
        if conn is not None:
            conn.close()
    return clock.sample()


def _batched(conn: Any, events: Sequence[InboundEvent]) -> None:
    with conn.cursor() as cursor:
        handle_clicks(events, HandlerContext(conn, cursor, "bench-alo"))
    conn.commit()


def _per_message(conn: Any, events: Sequence[InboundEvent]) -> None:
    with conn.cursor() as cursor:
        context = HandlerContext(conn, cursor, "bench-per-message")
        for event in events:
            handle_clicks([event], context)
            conn.commit()


def run_until(
    env: BenchEnv, topic: str, total: int, clock: Clock, **settings: Any
) -> ConsumerRuntime:
    """Run ``ConsumerRuntime`` (click handler) on ``topic`` until ``clock`` counted ``total``.

    ``settings`` are ``ConsumerSettings`` fields (``batch_size``, ``crash_attempts``...); the
    group is a fresh one. Returns the stopped runtime.
    """
    fields: dict[str, Any] = {"batch_size": 500, "batch_timeout_s": 1.0, **settings}
    consumer = ConsumerSettings(
        group=f"bench-{uuid.uuid4().hex[:8]}", topics=(topic,), handler="clicks", **fields
    )
    holder: list[ConsumerRuntime] = []

    def handler(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        handle_clicks(events, tx)
        if clock.events >= total:
            holder[0].stop()

    runtime = ConsumerRuntime(
        env.settings, consumer, decoder=Codec.load(), handler=handler, hooks=_Timed(clock)
    )
    holder.append(runtime)
    runtime.run()
    return runtime


def _oncepipe(env: BenchEnv, topic: str, total: int, batch: int, cpu: ServiceCpu) -> Sample:
    _reset(env)
    clock = Clock(cpu, total)
    run_until(env, topic, total, clock, batch_size=batch)
    return clock.sample()


class _Timed(NoHooks):
    """Marks the clock where the runtime starts applying a batch, as ``_loop`` does."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def batch_started(self, batch: BatchStarted) -> None:
        self._clock.mark(batch.events)


def _fill(env: BenchEnv, topic: str, data: EventSet) -> None:
    producer = Producer(raw_config(env, idempotent=True))
    raw_send(producer, topic, data)


def _variants(
    env: BenchEnv, topic: str, total: int, batch: int, codec: Codec, *, per_message: bool
) -> list[Variant]:
    cpu = ServiceCpu()

    def loop(write: Callable[[Any, Sequence[InboundEvent]], None] | None) -> Callable[[], Sample]:
        return lambda: _loop(
            env, topic, total=total, batch=batch, cpu=cpu, write=write, codec=codec
        )

    variants = [
        Variant(RAW, "consume(batch) + Codec.decode_batch, no database", loop(None)),
        Variant(AT_LEAST_ONCE, "same writes, one txn per batch, no inbox/offsets", loop(_batched)),
        Variant(
            ONCEPIPE,
            "ConsumerRuntime + click handler: inbox, handler, offsets CAS, one txn per batch",
            lambda: _oncepipe(env, topic, total, batch, cpu),
        ),
    ]
    if per_message:
        # About 1,000 events/s: a smaller count keeps the run short; the rate is what counts.
        few = min(total, PER_MESSAGE_EVENTS)
        variants.append(
            Variant(
                PER_MESSAGE,
                f"same writes, one txn per message ({few} events)",
                lambda: _loop(
                    env,
                    topic,
                    total=few,
                    batch=batch,
                    cpu=cpu,
                    write=_per_message,
                    codec=codec,
                ),
            )
        )
    return variants


def run_consume(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Throughput against batch size (click), and at batch 500 for the 2 KB event."""
    result = SuiteResult("consume", quick=quick)
    codec = Codec.load()
    big = 20_000 if quick else 60_000
    small = {1: 600 if quick else 2000, 10: 3000 if quick else 10_000}
    plan = [("click", b, small.get(b, big)) for b in BATCH_SIZES]
    plan.append(("click-2k", 500, big // 2))
    topics: dict[str, str] = {}
    for kind, batch, total in plan:
        if kind not in topics:
            data = EventSet.build(kind, big, codec)
            topics[kind] = env.create_topic("consume", PARTITIONS)
            _fill(env, topics[kind], data)
        variants = _variants(env, topics[kind], total, batch, codec, per_message=batch == 500)
        result.add_case(
            f"{kind}, batch {batch}",
            variants,
            interleave(runs, variants),
            baseline=AT_LEAST_ONCE,
            params={"events": total, "batch": batch, "kind": kind},
        )
    for name in topics.values():
        env.delete_topic(name)
    return result


# -- peak RSS of a worker process -------------------------------------------------------------

WORKER_RSS_CASES = (("click", 500), ("click", 2000), ("click-2k", 500), ("click-2k", 2000))


def worker_peak_rss(env: BenchEnv, topic: str, total: int, batch: int) -> float:
    """Peak RSS (MB) of one consumer worker process (``bench.effects``) applying ``total``.

    The worker runs alone in its own process, as ``oncepipe consume`` does; its ``VmHWM`` is
    read once every event's batch committed, before it is stopped.
    """
    _reset(env)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "effects.log"
        child_env = {**os.environ, "ONCEPIPE_DATABASE_URL": env.database_url,
                     "ONCEPIPE_LOG_LEVEL": "WARNING"}  # fmt: skip
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.effects", "--topic", topic, "--group",
             f"bench-{uuid.uuid4().hex[:8]}", "--out", str(out), "--batch-size", str(batch),
             "--batch-timeout", "1"],
            env=child_env,
        )  # fmt: skip
        try:
            seen = 0
            while seen < total:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited ({worker.returncode}) early")
                time.sleep(0.2)
                seen = sum(1 for _ in out.open()) if out.exists() else 0
            peak = _hwm_mb(worker.pid)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    if peak is None:
        raise RuntimeError("cannot read the worker's VmHWM")
    return peak


def _hwm_mb(pid: int) -> float | None:
    """``VmHWM`` of ``pid`` in MB (10^6 bytes), or None."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.consume --worker-rss``: a worker's peak RSS per event kind and batch."""
    parser = argparse.ArgumentParser(prog="python -m bench.consume")
    parser.add_argument("--worker-rss", action="store_true", required=True)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    env = BenchEnv()
    codec = Codec.load()
    print("kind\tbatch\tevents\tworker peak RSS (MB)")
    for kind in dict.fromkeys(k for k, _ in WORKER_RSS_CASES):
        with env.topic("rss", PARTITIONS) as topic:
            _fill(env, topic, EventSet.build(kind, args.events, codec))
            for case_kind, batch in WORKER_RSS_CASES:
                if case_kind == kind:
                    peak = worker_peak_rss(env, topic, args.events, batch)
                    print(f"{kind}\t{batch}\t{args.events}\t{peak:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
