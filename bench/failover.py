"""Fail-over: seconds from SIGKILL of an ``oncepipe consume`` worker to the first batch applied
of its partitions, by another worker or by itself restarted in place; and false evictions.

python -m bench --only failover [--quick]

Each trial starts two workers of a fresh group (the victim and the survivor) on one topic fed
by a steady stream, waits until both own partitions and have applied batches, SIGKILLs the
victim and polls ``consumer_offsets`` until a partition the victim owned moves again. In the
restart variants the victim is started again at once with the same ``group.instance.id`` (and
again a second later whenever it exits, as a supervisor would). False evictions: two workers
per setting beside ``stress-ng --cpu 2`` for a few minutes with no kill; every assignment change
after both settled is a rebalance nobody asked for, extrapolated to an hour.

Public names: ``run_failover``, ``VARIANTS``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.events import EventSet
from bench.raw import raw_config
from bench.results import RESULTS_DIR
from oncepipe.kafka import Producer
from producers.outbox import event_headers
from schemas import Codec

__all__ = ["VARIANTS", "Setting", "run_failover"]

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
PARTITIONS = 4
RATE = 200  # records per second over all partitions: every partition moves several times a second


@dataclass(frozen=True)
class Setting:
    """One row of the table: protocol, static membership, session timeout, restart or not."""

    name: str
    protocol: str
    session_ms: int | None  # None: the broker's (consumer protocol)
    static: bool = False
    restart: bool = False

    def env(self, slot: str) -> dict[str, str]:
        """The worker's ONCEPIPE_CONSUMER_* variables for this setting."""
        env = {"ONCEPIPE_CONSUMER_GROUP_PROTOCOL": self.protocol}
        if self.session_ms is not None:
            env["ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS"] = str(self.session_ms)
        if self.static:
            env["ONCEPIPE_CONSUMER_INSTANCE_ID"] = slot
        return env


VARIANTS = (
    Setting("classic, 45 s", "classic", 45_000),
    Setting("classic, 10 s", "classic", 10_000),
    Setting("classic, 6 s", "classic", 6_000),
    Setting("classic, 45 s, static, restart in place", "classic", 45_000, True, True),
    Setting("consumer (KIP-848), broker 45 s", "consumer", None),
    Setting("consumer (KIP-848), static, restart in place", "consumer", None, True, True),
)
EVICTION_SETTINGS = (VARIANTS[1], VARIANTS[2], VARIANTS[4])


class Stream(threading.Thread):
    """Produces pre-encoded clicks at ``RATE`` per second until stopped."""

    def __init__(self, env: BenchEnv, topic: str) -> None:
        super().__init__(daemon=True)
        self._producer = Producer(raw_config(env, idempotent=True))
        self._data = EventSet.build("clicks", 2000, Codec.load())
        self._headers: list[list[tuple[str, str | bytes | None]]] = [
            list(event_headers(encoded)) for encoded in self._data.encoded
        ]
        self._topic = topic
        self._done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._done.wait(0.05):
            for _ in range(RATE // 20):
                i = n % len(self._data.encoded)
                encoded = self._data.encoded[i]
                self._producer.produce(
                    self._topic, encoded.value, key=encoded.key,
                    headers=self._headers[i], partition=n % PARTITIONS,
                )  # fmt: skip
                n += 1
            self._producer.poll(0)
        self._producer.flush(30)

    def stop(self) -> None:
        """Stop producing and flush."""
        self._done.set()
        self.join(60)


@dataclass
class Worker:
    """One ``oncepipe consume`` process and its JSON log."""

    proc: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def owned(self) -> set[str]:
        """Partitions owned now, from the assignment lines."""
        owned: set[str] = set()
        for line in self.lines():
            if line.get("event") == "partitions assigned":
                owned |= set(line.get("partitions") or {})
            elif line.get("event") in {"partitions revoked", "partitions lost"}:
                owned -= set(line.get("partitions") or [])
        return owned

    def changes(self) -> int:
        """Assignment changes logged (assigned, revoked, lost)."""
        wanted = {"partitions assigned", "partitions revoked", "partitions lost"}
        return sum(1 for line in self.lines() if line.get("event") in wanted)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


@dataclass
class Trials:
    """Starts workers of fresh groups; kills them all at the end."""

    env: BenchEnv
    topic: str
    folder: Path
    workers: list[Worker] = field(default_factory=list)

    def start(self, group: str, setting: Setting, slot: str) -> Worker:
        """One worker of ``group`` in ``slot`` (its instance id when static)."""
        log = self.folder / f"{group}-{slot}-{len(self.workers)}.log"
        env = {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": self.env.database_url,
            "ONCEPIPE_LOG_FORMAT": "json",
            "ONCEPIPE_LOG_LEVEL": "INFO",
            "ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S": "0.2",
            "ONCEPIPE_CONSUMER_AUTO_OFFSET_RESET": "latest",
            "ONCEPIPE_CONSUMER_CLIENT_ID": slot,
            **setting.env(slot),
        }
        argv = [ONCEPIPE, "consume", "--group", group, "--topic", self.topic, "--handler",
                "clicks"]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        worker = Worker(proc, log)
        self.workers.append(worker)
        return worker

    def offsets(self, group: str) -> dict[str, int]:
        """Stored next offsets of ``group``, by partition name."""
        with self.env.connect(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT partition, next_offset FROM oncepipe.consumer_offsets "
                "WHERE consumer_group = %s AND topic = %s",
                (group, self.topic),
            ).fetchall()
        return {f"{self.topic}[{p}]": int(o) for p, o in rows}

    def kill_all(self) -> None:
        """SIGKILL every worker started."""
        for worker in self.workers:
            worker.kill()
        self.workers.clear()


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"failover bench: timed out waiting for {what}")
        time.sleep(0.1)


def _settled(trials: Trials, group: str, pair: list[Worker]) -> bool:
    owned = [worker.owned() for worker in pair]
    if not all(owned) or len(owned[0] | owned[1]) != PARTITIONS:
        return False
    return all(name in trials.offsets(group) for name in owned[0] | owned[1])


def one_trial(trials: Trials, setting: Setting) -> float:
    """Seconds from SIGKILL of the victim to its partitions' first applied batch."""
    group = f"bench-failover-{uuid.uuid4().hex[:8]}"
    victim = trials.start(group, setting, "slot-a")
    _wait(lambda: len(victim.owned()) == PARTITIONS, 90, "the first worker's assignment")
    survivor = trials.start(group, setting, "slot-b")
    pair = [victim, survivor]
    _wait(lambda: _settled(trials, group, pair), 120, "both workers to own partitions")
    time.sleep(1.0)  # a few batches on each side: the group is steady
    mine = victim.owned()
    victim.kill()
    killed = time.monotonic()
    # Read after the kill: a batch the victim committed just before dying is not a fail-over.
    before = trials.offsets(group)
    restarted: list[Worker] = []
    if setting.restart:
        restarted.append(trials.start(group, setting, "slot-a"))
    while True:
        now = trials.offsets(group)
        if any(now.get(name, 0) > before.get(name, 0) for name in mine):
            elapsed = time.monotonic() - killed
            break
        if restarted and restarted[-1].proc.poll() is not None:
            time.sleep(1.0)  # a supervisor's restart delay, then the same slot again
            restarted.append(trials.start(group, setting, "slot-a"))
        if time.monotonic() - killed > 180:
            raise TimeoutError(f"failover bench: no batch 180 s after the kill ({setting.name})")
        time.sleep(0.05)
    trials.kill_all()
    return elapsed


def false_evictions(trials: Trials, window_s: float) -> dict[str, dict[str, float]]:
    """Assignment changes with no kill, per setting, beside stress-ng on two cores."""
    pairs = {}
    for setting in EVICTION_SETTINGS:
        group = f"bench-evict-{uuid.uuid4().hex[:8]}"
        pair = [trials.start(group, setting, "slot-a"), trials.start(group, setting, "slot-b")]
        pairs[setting.name] = (group, pair)
    for group, pair in pairs.values():
        _wait(lambda g=group, p=pair: _settled(trials, g, p), 180, "the groups to settle")
    time.sleep(5.0)
    baseline = {name: sum(w.changes() for w in pair) for name, (_, pair) in pairs.items()}
    load = subprocess.Popen(["stress-ng", "--cpu", "2", "--quiet"])
    try:
        time.sleep(window_s)
    finally:
        load.send_signal(signal.SIGTERM)
        load.wait(30)
    loadavg = os.getloadavg()[0]
    result = {}
    for name, (_, pair) in pairs.items():
        changes = sum(w.changes() for w in pair) - baseline[name]
        result[name] = {
            "changes": changes,
            "window_s": window_s,
            "per_hour": changes * 3600.0 / window_s,
            "loadavg_1m_at_end": loadavg,
        }
    trials.kill_all()
    return result


def run_failover(env: BenchEnv, *, quick: bool, runs: int) -> Path:
    """Run every variant ``runs`` times (median) and the false-eviction window; write JSON."""
    if shutil.which("stress-ng") is None:
        raise RuntimeError("stress-ng not found: python -m infra tool stress-ng")
    only = os.environ.get("BENCH_FAILOVER_VARIANTS", "")
    chosen = [v for v in VARIANTS if not only or v.name in only.split(";")]
    runs = 1 if quick else runs
    topic = env.create_topic("failover", PARTITIONS)
    stream = Stream(env, topic)
    stream.start()
    folder = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    trials = Trials(env, topic, folder)
    results: dict[str, Any] = {"runs": runs, "variants": {}, "logs": str(folder)}
    # Variant subsets may run side by side, each into its own file (the long ones wait on timeouts).
    out = RESULTS_DIR / f"{os.environ.get('BENCH_FAILOVER_RESULT', 'failover')}.json"
    try:
        for setting in chosen:
            seconds = []
            for _ in range(runs):
                seconds.append(one_trial(trials, setting))
                print(f"failover: {setting.name}: {seconds[-1]:.1f} s", file=sys.stderr)
            results["variants"][setting.name] = {
                "median_s": statistics.median(seconds),
                "runs_s": seconds,
                "loadavg_1m": os.getloadavg()[0],
            }
            out.write_text(json.dumps(results, indent=2) + "\n")
        window = float(os.environ.get("BENCH_FAILOVER_EVICTION_S", "60" if quick else "300"))
        if window > 0:
            results["false_evictions"] = false_evictions(trials, window)
        out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        trials.kill_all()
        stream.stop()
    return out
