"""End-to-end latency: outbox commit to committed effect, LISTEN/NOTIFY against polling.

Three processes per run, all on this machine: this one writes click events into the outbox
at a fixed rate (each due event enqueued and committed as soon as it is due; when several are
due at once they share a transaction and one ``enqueue_many`` statement) and notes each
commit's time; ``oncepipe relay`` (with ``--listen`` or ``--no-listen``, poll interval 1 s)
publishes them; ``python -m bench.effects`` runs the oncepipe consumer (click handler, batch
500, batch timeout 50 ms, default linger) and notes when each event's batch transaction
committed. Latency = effect commit time - outbox commit time.

Each run also breaks that latency down per stage (``STAGES``), from the outbox commit, the
record's Kafka timestamp (the relay's ``produce``), the row's ``published_at`` (the relay
marked it after the acks) and the consumer's notes (when the loop step that read the event
started polling, when its batch was read and decoded, when it committed). Alone:
``python -m bench.latency [--quick] [--rates 1000,5000] [--listen-only]`` prints them.

Public names: ``run_latency``, ``STAGES``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.events import make_events
from bench.results import SuiteResult
from infra.workers import Supervisor
from oncepipe.kafka import TopicPartition, create_consumer
from producers.outbox import enqueue_many
from schemas import ClickEvent, Codec

__all__ = ["STAGES", "run_latency"]

RATES = (1000, 5000)
MODES = {"LISTEN/NOTIFY": "--listen", "polling only (listen=False)": "--no-listen"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


STAGES = {
    "relay pick-up (commit -> produce)": ("committed", "produced"),
    "relay send + ack + mark (produce -> published_at)": ("produced", "published"),
    "to the consumer (produce -> batch read)": ("produced", "read"),
    "consumer poll of that batch (step start -> batch read)": ("polling", "read"),
    "batch apply + commit (read -> committed)": ("read", "effect"),
}
"""Stage name -> (from, to) of the per-event times ``_one_run`` gathers."""


def _read_effects(path: Path) -> dict[str, tuple[float, ...]]:
    """event id -> (effect committed, batch read, step started polling), first line wins."""
    effects: dict[str, tuple[float, ...]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            event_id, *times = line.split()
            if len(times) == 3:
                effects.setdefault(event_id, tuple(float(t) for t in times))
    return effects


def _kafka_times(env: BenchEnv, topic: str, wanted: int) -> dict[str, float]:
    """event id -> the record's Kafka timestamp (CreateTime: the relay's produce), seconds."""
    consumer = create_consumer(env.settings, f"bench-latency-read-{uuid.uuid4().hex[:8]}")
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
    times: dict[str, float] = {}
    deadline = time.monotonic() + 30
    try:
        while len(times) < wanted and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                if message.error() is None:
                    headers = dict(message.headers() or [])
                    event_id = headers.get("event_id")
                    if isinstance(event_id, bytes):
                        times[event_id.decode()] = message.timestamp()[1] / 1000
    finally:
        consumer.close()
    return times


def _stages(
    env: BenchEnv, topic: str, committed: dict[str, float], effects: dict[str, tuple[float, ...]]
) -> dict[str, dict[str, float]]:
    """p50/p99 in ms of each of ``STAGES`` over the events with every time known."""
    produced = _kafka_times(env, topic, len(committed))
    with env.connect() as conn:
        published = dict(
            conn.execute(
                "SELECT dedupe_id, extract(epoch FROM published_at)::float8"
                " FROM oncepipe.outbox WHERE topic = %s AND published_at IS NOT NULL",
                (topic,),
            ).fetchall()
        )
    stages: dict[str, dict[str, float]] = {}
    for name, (start, end) in STAGES.items():
        spans = []
        for event_id, at in committed.items():
            if event_id not in effects or event_id not in produced or event_id not in published:
                continue
            effect, read, polling = effects[event_id]
            times = {"committed": at, "produced": produced[event_id],
                     "published": published[event_id], "read": read, "polling": polling,
                     "effect": effect}  # fmt: skip
            spans.append((times[end] - times[start]) * 1000)
        if spans:
            stages[name] = {"p50": _percentile(spans, 0.5), "p99": _percentile(spans, 0.99)}
    return stages


def _wait_for(path: Path, ids: set[str], timeout: float) -> dict[str, tuple[float, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        effects = _read_effects(path)
        if ids <= effects.keys() or time.monotonic() > deadline:
            return effects
        time.sleep(0.1)


def _write(
    conn: Any, codec: Codec, topic: str, events: list[ClickEvent], rate: int
) -> dict[str, float]:
    committed: dict[str, float] = {}
    start = time.perf_counter()
    sent = 0
    while sent < len(events):
        due = min(len(events), int((time.perf_counter() - start) * rate) + 1)
        if due <= sent:
            time.sleep(0.0002)
            continue
        batch = events[sent:due]
        enqueue_many(conn, batch, codec=codec, topic=topic)
        conn.commit()
        now = time.time()
        committed.update((str(e.event_id), now) for e in batch)
        sent = due
    return committed


def _one_run(env: BenchEnv, codec: Codec, mode: str, rate: int, seconds: float) -> dict[str, Any]:
    bin_dir = Path(sys.executable).parent
    child_env = {**os.environ, "ONCEPIPE_DATABASE_URL": env.database_url,
                 "ONCEPIPE_LOG_LEVEL": "WARNING"}  # fmt: skip
    events = [
        e.model_copy(update={"event_id": uuid.uuid4()})
        for e in make_events("click", int(rate * seconds) + 1)
    ]
    with env.topic("latency") as topic, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "effects.log"
        # Both are stopped (SIGTERM, SIGKILL after 30 s) when the run ends, however it ends.
        with Supervisor(child_env, grace=30) as processes:
            processes.start(
                "relay", [str(bin_dir / "oncepipe"), "relay", MODES[mode], "--poll-interval", "1"]
            )
            processes.start(
                "consumer",
                [sys.executable, "-m", "bench.effects", "--topic", topic, "--group",
                 f"bench-{uuid.uuid4().hex[:8]}", "--out", str(out)],
            )  # fmt: skip
            with env.connect() as conn:
                warm = _write(conn, codec, topic, events[:1], rate)
                if not _wait_for(out, set(warm), 60).keys() >= warm.keys():
                    raise RuntimeError("the warm-up event never reached the consumer")
                committed = _write(conn, codec, topic, events[1:], rate)
            effects = _wait_for(out, set(committed), 60)
        stages = _stages(env, topic, committed, effects)
    latencies = [(effects[k][0] - t) * 1000 for k, t in committed.items() if k in effects]
    return {
        "events": len(committed),
        "missing": len(committed) - len(latencies),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "batches": len({times[0] for times in effects.values()}),
        "stages": stages,
    }


def run_latency(
    env: BenchEnv,
    *,
    quick: bool,
    runs: int,
    rates: tuple[int, ...] = RATES,
    modes: tuple[str, ...] = tuple(MODES),
) -> SuiteResult:
    """p50/p95/p99 at each rate, LISTEN/NOTIFY and polling runs interleaved."""
    result = SuiteResult("latency", quick=quick)
    codec = Codec.load()
    seconds = 3.0 if quick else 8.0
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.outbox")
    for rate in rates:
        samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for round_no in range(runs):
            order = list(modes) if round_no % 2 == 0 else list(reversed(modes))
            for mode in order:
                samples[mode].append(_one_run(env, codec, mode, rate, seconds))
        result.add_latency_case(
            f"{rate} events/s", samples, params={"rate": rate, "seconds": seconds}
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the latency suite alone and print each run's percentiles and stage breakdown."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 8 s")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="events/s, a,b,...")
    parser.add_argument("--listen-only", action="store_true", help="leave the polling runs out")
    args = parser.parse_args(argv)
    modes = tuple(MODES)[:1] if args.listen_only else tuple(MODES)
    rates = tuple(int(r) for r in args.rates.split(","))
    result = run_latency(BenchEnv(), quick=args.quick, runs=args.runs, rates=rates, modes=modes)
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    for case in result.cases:
        for mode in case["modes"]:
            for run in mode["runs"]:
                print(json.dumps({"case": case["case"], "mode": mode["name"], **run}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
