"""``python -m bench.overlap``: does decoding batch N+1 while batch N's transaction runs pay?

A prototype, measured, not the runtime. Three ways to consume the same topic into the same
database state (click tables, inbox and offsets emptied before every run):

- ``serial``: one thread doing what ``ConsumerRuntime._step`` does for a plain batch: read
  (``consume(1)`` then ``consume(size - 1, linger)``), ``decode_records``, ``apply_batch``
  (inbox, click handler, offsets compare-and-set, COMMIT), repeat;
- ``overlap``: the same steps and calls, but ``apply_batch`` runs in a second thread and the
  main thread reads and decodes batch N+1 meanwhile; it hands N+1 over only once N committed
  (one batch ahead at most), so the order of transactions and offsets is the serial one;
- ``overlap, GIL switch interval 0.5 ms``: the same with ``sys.setswitchinterval(0.0005)``, so
  the apply thread gets the GIL back sooner once PostgreSQL answers;
- ``runtime``: ``ConsumerRuntime`` itself (as ``bench.consume`` drives it), for reference:
  it also writes the crash-loop attempt record and keeps its bookkeeping.

The clock runs from the start of the first batch's transaction to the start of the last one,
as in ``bench.consume``. CPU per event: the client is this process (both threads), PostgreSQL
its backends. Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from confluent_kafka import Consumer, TopicPartition

from bench.consume import PARTITIONS, RESET, Clock, run_until
from bench.env import BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.raw import Producer, raw_config, raw_send
from bench.results import Variant, interleave
from bench.services import ServiceCpu
from consumers.batch import BatchResult, apply_batch
from consumers.decoding import DecodedBatch, decode_records
from consumers.events import Coordinates
from consumers.handlers.clicks import handle_clicks
from oncepipe.kafka import connection_config
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from schemas import Codec

SERIAL = "serial (same steps, one thread)"
OVERLAP = "overlap (decode N+1 during N's txn)"
OVERLAP_FAST = "overlap, GIL switch interval 0.5 ms"
RUNTIME = "ConsumerRuntime (reference)"
PREFETCH_KBYTES = 16_384  # the runtime's default queued.max.messages.kbytes
LINGER_S = 0.0  # the runtime's default batch_linger_s
FAST_SWITCH_S = 0.0005


class _Worker:
    """The state both loops share: a consumer on every partition, a connection, positions."""

    def __init__(self, env: BenchEnv, topic: str, batch: int, codec: Codec) -> None:
        self.env, self.batch, self.codec = env, batch, codec
        self.group = f"bench-overlap-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(
            {
                **connection_config(env.settings),
                "group.id": self.group,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "queued.max.messages.kbytes": PREFETCH_KBYTES,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.positions: dict[Coordinates, int | None] = {
            (topic, p): None for p in range(PARTITIONS)
        }
        self.conn = env.connect()
        # Wall seconds in each step, over the whole run (for the per-step columns).
        self.read_s = self.apply_s = 0.0
        self.read_events = 0

    def read(self) -> DecodedBatch | None:
        """One batch as the runtime reads it, decoded; None when nothing came."""
        began = time.perf_counter()
        records = self.consumer.consume(1, 1.0)
        if records and self.batch > 1:
            records += self.consumer.consume(self.batch - 1, LINGER_S)
        records = [r for r in records if r.error() is None]
        decoded = decode_records(self.codec, records) if records else None
        self.read_s += time.perf_counter() - began
        self.read_events += len(records)
        return decoded

    def apply(self, decoded: DecodedBatch, clock: Clock) -> BatchResult:
        """One transaction, then the positions move as the runtime's ``Assignment`` does."""
        clock.mark(len(decoded.events) + len(decoded.rejected))
        began = time.perf_counter()
        result = apply_batch(
            self.conn, settings=self.env.settings, group=self.group, events=decoded.events,
            rejected=decoded.rejected, positions=self.positions, handler=handle_clicks,
        )  # fmt: skip
        for move in result.moves:
            self.positions[(move.topic, move.partition)] = move.next_offset
        self.apply_s += time.perf_counter() - began
        return result

    def timed(self, sample: Sample) -> Sample:
        """``sample`` with the wall µs per event spent reading + decoding and applying."""
        per = 1e6 / max(self.read_events, 1)
        steps = {"read_decode_us": self.read_s * per, "apply_us": self.apply_s * per}
        return replace(sample, extra={**sample.extra, **steps})

    def check(self) -> None:
        """Every record read was applied: the stored positions add up to the records read."""
        moved = sum(p or 0 for p in self.positions.values())
        if moved != self.read_events:
            raise RuntimeError(f"{self.read_events} records read but offsets moved by {moved}")

    def close(self) -> None:
        self.consumer.close()
        self.conn.close()


def _size(decoded: DecodedBatch) -> int:
    return len(decoded.events) + len(decoded.rejected)


def _batches(worker: _Worker, total: int) -> Iterator[DecodedBatch]:
    """The worker's decoded batches until ``total`` records were read."""
    read = 0
    while read < total:
        decoded = worker.read()
        if decoded is not None:
            read += _size(decoded)
            yield decoded


def run_serial(env: BenchEnv, topic: str, total: int, batch: int, cpu: ServiceCpu) -> Sample:
    """Read, decode, apply, in one thread."""
    _reset(env)
    clock, worker = Clock(cpu, total), _Worker(env, topic, batch, Codec.load())
    try:
        for decoded in _batches(worker, total):
            worker.apply(decoded, clock)
        worker.check()
    finally:
        worker.close()
    return worker.timed(clock.sample())


def run_overlap(env: BenchEnv, topic: str, total: int, batch: int, cpu: ServiceCpu) -> Sample:
    """Read and decode batch N+1 here while a second thread commits batch N."""
    _reset(env)
    clock, worker = Clock(cpu, total), _Worker(env, topic, batch, Codec.load())
    pending: Future[BatchResult] | None = None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="overlap-apply") as pool:
            for decoded in _batches(worker, total):
                if pending is not None:
                    pending.result()  # N committed (or raised) before N+1 starts
                pending = pool.submit(worker.apply, decoded, clock)
            if pending is not None:
                pending.result()
        worker.check()
    finally:
        worker.close()
    return worker.timed(clock.sample())


def run_overlap_fast_switch(
    env: BenchEnv, topic: str, total: int, batch: int, cpu: ServiceCpu
) -> Sample:
    """``run_overlap`` with a 0.5 ms GIL switch interval instead of Python's 5 ms.

    A reply from PostgreSQL wakes the apply thread, which then waits for the decoding thread
    to give up the GIL: up to one switch interval per round trip.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(FAST_SWITCH_S)
    try:
        return run_overlap(env, topic, total, batch, cpu)
    finally:
        sys.setswitchinterval(before)


def run_runtime(env: BenchEnv, topic: str, total: int, batch: int, cpu: ServiceCpu) -> Sample:
    """``ConsumerRuntime`` with the click handler, stopped once ``total`` events were applied."""
    _reset(env)
    clock = Clock(cpu, total)
    run_until(env, topic, total, clock, batch_size=batch, batch_linger_s=LINGER_S)
    return clock.sample()


def _reset(env: BenchEnv) -> None:
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)


Runner = Callable[[BenchEnv, str, int, int, ServiceCpu], Sample]


def _variants(env: BenchEnv, topic: str, total: int, batch: int, runtime: bool) -> list[Variant]:
    cpu = ServiceCpu()

    def bind(run: Runner) -> Callable[[], Sample]:
        return lambda: run(env, topic, total, batch, cpu)

    variants = [
        Variant(SERIAL, "read, decode, apply_batch in one thread", bind(run_serial)),
        Variant(OVERLAP, "apply_batch in a second thread, one batch ahead", bind(run_overlap)),
        Variant(
            OVERLAP_FAST, "the same, sys.setswitchinterval(0.0005)", bind(run_overlap_fast_switch)
        ),
    ]
    if runtime:
        variants.append(Variant(RUNTIME, "ConsumerRuntime, click handler", bind(run_runtime)))
    return variants


_STEPS = ("read_decode_us", "apply_us")


def _row(case: str, name: str, samples: Sequence[Sample], base: float) -> str:
    rates = [s.events / s.wall_s for s in samples]
    median = statistics.median(rates)
    events = sum(s.events for s in samples)
    client = 1e6 * sum(s.cpu_s for s in samples) / events
    server = 1e6 * sum(s.server_cpu_s.get("postgres", 0.0) for s in samples) / events
    spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
    steps = [statistics.median(s.extra.get(k, 0.0) for s in samples) for k in _STEPS]
    step_cells = " | ".join(f"{v:.0f}" if v else "-" for v in steps)
    return (
        f"| {case} | {name} | {median:,.0f} ({spread}) | {median / base:.2f} "
        f"| {client:.0f} | {server:.0f} | {step_cells} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Fill one topic per event kind, run the variants interleaved per case, print a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.overlap", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="click events per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", default="100,500,2000", help="click batch sizes")
    parser.add_argument("--big-batch", type=int, default=500, help="batch for click-2k (0: none)")
    parser.add_argument("--no-runtime", action="store_true", help="leave ConsumerRuntime out")
    args = parser.parse_args(argv)
    configure_logging(load_settings(log_level="WARNING"))
    env, codec = BenchEnv(), Codec.load()
    plan = [("click", int(b), args.events) for b in args.batches.split(",") if b]
    if args.big_batch:
        plan.append(("click-2k", args.big_batch, args.events // 2))
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    print("| case | variant | events/s median (min-max) | x serial | client µs/event "
          "| PostgreSQL µs/event | read+decode wall µs/event | apply wall µs/event |"
          "\n|---|---|--:|--:|--:|--:|--:|--:|", flush=True)  # fmt: skip
    for kind in dict.fromkeys(k for k, _, _ in plan):
        cases = [(b, n) for k, b, n in plan if k == kind]
        with env.topic("overlap", PARTITIONS) as topic:
            most = max(n for _, n in cases)
            raw_send(Producer(raw_config(env, idempotent=True)), topic,
                     EventSet.build(kind, most, codec))  # fmt: skip
            for batch, total in cases:
                variants = _variants(env, topic, total, batch, not args.no_runtime)
                samples = interleave(args.runs, variants)
                base = statistics.median(s.events / s.wall_s for s in samples[SERIAL])
                for variant in variants:
                    case = f"{kind}, batch {batch}"
                    print(_row(case, variant.name, samples[variant.name], base), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
