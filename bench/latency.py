"""End-to-end latency: outbox commit to committed effect, LISTEN/NOTIFY against polling.

Three processes per run, all on this machine: this one writes click events into the outbox
at a fixed rate (each due event enqueued and committed as soon as it is due; when several are
due at once they share a transaction) and notes each commit's time; ``oncepipe relay`` (with
``--listen`` or ``--no-listen``, poll interval 1 s) publishes them; ``python -m bench.effects``
runs the oncepipe consumer (click handler, batch 500, batch timeout 50 ms) and notes when
each event's batch transaction committed. Latency = effect commit time - outbox commit time.

Public names: ``run_latency``.
"""

from __future__ import annotations

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
from producers.outbox import enqueue
from schemas import ClickEvent, Codec

__all__ = ["run_latency"]

RATES = (1000, 5000)
MODES = {"LISTEN/NOTIFY": "--listen", "polling only (listen=False)": "--no-listen"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _read_effects(path: Path) -> dict[str, float]:
    effects: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            event_id, _, when = line.partition(" ")
            if when:
                effects.setdefault(event_id, float(when))
    return effects


def _wait_for(path: Path, ids: set[str], timeout: float) -> dict[str, float]:
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
        for event in batch:
            enqueue(conn, event, codec=codec, topic=topic)
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
    latencies = [(effects[k] - t) * 1000 for k, t in committed.items() if k in effects]
    return {
        "events": len(committed),
        "missing": len(committed) - len(latencies),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def run_latency(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """p50/p95/p99 at each rate, LISTEN/NOTIFY and polling runs interleaved."""
    result = SuiteResult("latency", quick=quick)
    codec = Codec.load()
    seconds = 3.0 if quick else 8.0
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.outbox")
    for rate in RATES:
        samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_no in range(runs):
            order = list(MODES) if round_no % 2 == 0 else list(reversed(MODES))
            for mode in order:
                samples[mode].append(_one_run(env, codec, mode, rate, seconds))
        result.add_latency_case(
            f"{rate} events/s", samples, params={"rate": rate, "seconds": seconds}
        )
    return result
