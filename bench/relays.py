"""Relays in parallel: 1, 2 and 4 ``oncepipe relay`` processes on one outbox, side by side.

Two cases, each run with 1, 2 and 4 relays in one suite run (the same backlog, topic layout and
services), interleaved per round so a load change on the machine hits every count alike:

- ``backlog``: the relays start on an empty outbox and spread its shards; then one transaction
  loads the backlog (1,000,000 rows; 100,000 with ``--quick``, click-sized values, 1,000 keys)
  and commits. The clock runs from that COMMIT to the last row marked published; the drain curve
  (pending rows every half second) is kept.
- ``steady``: a writer enqueues at a fixed rate (batches of 1% of a second's rows, one
  transaction each) for a fixed time while the relays publish. Reported: rows published per
  second while writing, the largest backlog seen and how long after the last write the outbox
  was empty again (the relays keep up when that stays near zero).

CPU seconds of PostgreSQL, Kafka and the relay processes (summed) are charged to each run, to
say which one binds.

Public names: ``run_relays``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.measure import Sample
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu

__all__ = ["run_relays"]

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
RELAY_COUNTS = (1, 2, 4)
SHARDS = 16
LOAD = """
INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value)
SELECT %(topic)s, 'bench-' || g, convert_to('user-' || lpad((g %% 1000)::text, 4, '0'), 'UTF8'),
       convert_to(repeat('x', 90), 'UTF8')
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
PENDING = "SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL"
SAMPLE_S = 0.5


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Relays:
    """``count`` relay processes on the bench database, stopped with SIGTERM."""

    def __init__(self, env: BenchEnv, count: int) -> None:
        self._env = env
        self.count = count
        child_env = {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": env.database_url,
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": env.settings.kafka_bootstrap_servers,
            "ONCEPIPE_LOG_LEVEL": "WARNING",
        }
        argv = [ONCEPIPE, "relay", "--poll-interval", "0.2", "--batch-size", "1000"]
        self._logs = [tempfile.TemporaryFile() for _ in range(count)]  # noqa: SIM115 - closed in stop
        self.procs = [
            subprocess.Popen(argv, env=child_env, stdout=subprocess.DEVNULL, stderr=log)
            for log in self._logs
        ]

    def wait_spread(self, timeout: float = 120.0) -> None:
        """Until ``count`` relays hold every shard, none more than its fair share."""
        share = -(-SHARDS // self.count)
        deadline = time.monotonic() + timeout
        with self._env.connect(autocommit=True) as conn:
            while time.monotonic() < deadline:
                rows = conn.execute(
                    "SELECT owner, count(*) FROM oncepipe.relay_shards"
                    " WHERE owner IS NOT NULL AND lease_until > now() GROUP BY owner"
                ).fetchall()
                if (
                    len(rows) == self.count
                    and sum(n for _, n in rows) == SHARDS
                    and all(n <= share for _, n in rows)
                ):
                    return
                if any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"a relay exited: {self._stderr()}")
                time.sleep(0.2)
        raise RuntimeError(f"{self.count} relays did not spread the shards in {timeout}s")

    def cpu_s(self) -> float:
        return sum(_cpu_s(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        for log in self._logs:
            log.close()

    def _stderr(self) -> str:
        for proc, log in zip(self.procs, self._logs, strict=True):
            if proc.poll() is not None:
                log.seek(0)
                return log.read().decode(errors="replace")[-2000:]
        return ""


def _pending(conn: Any) -> int:
    row = conn.execute(PENDING).fetchone()
    return int(row[0]) if row else 0


def _reset(env: BenchEnv) -> None:
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.outbox RESTART IDENTITY")
        conn.execute("DELETE FROM oncepipe.relay_members")
        conn.execute("UPDATE oncepipe.relay_shards SET owner = NULL, lease_until = NULL")


def _charge(
    relays: _Relays, cpu: ServiceCpu, before: dict[str, float], relay_before: float
) -> tuple[float, dict[str, float]]:
    """CPU seconds since ``before``: the relays' (summed) and each service's, by name."""
    after = cpu.snapshot()
    return relays.cpu_s() - relay_before, {n: after[n] - before.get(n, 0.0) for n in after}


def _backlog_run(
    env: BenchEnv, topic: str, count: int, rows: int, curves: dict[str, Any]
) -> Sample:
    _reset(env)
    cpu = ServiceCpu()
    relays = _Relays(env, count)
    try:
        relays.wait_spread()
        with env.connect() as conn:
            conn.execute(LOAD, {"topic": topic, "first": 1, "last": rows})
            conn.execute("ANALYZE oncepipe.outbox")
            before, relay_before = cpu.snapshot(), relays.cpu_s()
            conn.commit()
        started = time.perf_counter()
        curve: list[tuple[float, int]] = []
        with env.connect(autocommit=True) as conn:
            while True:
                pending = _pending(conn)
                curve.append((round(time.perf_counter() - started, 2), pending))
                if pending == 0:
                    break
                time.sleep(SAMPLE_S)
        wall = time.perf_counter() - started
        relay_cpu, used = _charge(relays, cpu, before, relay_before)
    finally:
        relays.stop()
    curves.setdefault(f"{count} relay(s)", []).append(curve)
    return Sample(rows, wall, relay_cpu, 0, used, {"rows_per_s": rows / wall})


def _steady_run(env: BenchEnv, topic: str, count: int, rate: int, seconds: float) -> Sample:
    _reset(env)
    cpu = ServiceCpu()
    relays = _Relays(env, count)
    chunk = max(1, rate // 100)
    try:
        relays.wait_spread()
        before, relay_before = cpu.snapshot(), relays.cpu_s()
        started = time.perf_counter()
        written, peak = 0, 0
        with env.connect(autocommit=True) as writer, env.connect(autocommit=True) as reader:
            next_sample = 0.0
            while (now := time.perf_counter() - started) < seconds:
                due = min(int(now * rate), written + chunk * 10)
                if written < due:
                    writer.execute(LOAD, {"topic": topic, "first": written + 1, "last": due})
                    writer.execute("NOTIFY oncepipe_outbox")
                    written = due
                else:
                    time.sleep(0.01)
                if now >= next_sample:
                    peak = max(peak, _pending(reader))
                    next_sample = now + SAMPLE_S
            stopped = time.perf_counter()
            while (pending := _pending(reader)) > 0:
                peak = max(peak, pending)
                time.sleep(0.1)
        wall = time.perf_counter() - started
        catch_up = time.perf_counter() - stopped
        relay_cpu, used = _charge(relays, cpu, before, relay_before)
    finally:
        relays.stop()
    extra = {
        "offered_rows_per_s": written / seconds,
        "rows_per_s": written / wall,
        "peak_pending_rows": float(peak),
        "catch_up_s": catch_up,
    }
    return Sample(written, wall, relay_cpu, 0, used, extra)


def run_relays(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Run the backlog and steady-rate cases with 1, 2 and 4 relays."""
    result = SuiteResult("relays", quick=quick)
    rows = 100_000 if quick else 1_000_000
    rate, seconds = (3000, 10.0) if quick else (10_000, 30.0)
    curves: dict[str, Any] = {}
    with env.topic("relays", partitions=12) as topic:
        backlog = [
            Variant(
                f"{n} relay(s)",
                f"{n} oncepipe relay processes, batch 1,000",
                lambda n=n: _backlog_run(env, topic, n, rows, curves),  # type: ignore[misc]
            )
            for n in RELAY_COUNTS
        ]
        entry = result.add_case(
            "backlog", backlog, interleave(runs, backlog), baseline="1 relay(s)",
            params={"rows": rows, "keys": 1000, "partitions": 12, "shards": SHARDS},
        )  # fmt: skip
        entry["drain_curves"] = curves  # per relay count, per run: (seconds, pending rows)
        result.write()  # the backlog case is kept should the steady one fail
        steady = [
            Variant(
                f"{n} relay(s)",
                f"{n} relays, writer at {rate} rows/s for {seconds:.0f}s",
                lambda n=n: _steady_run(env, topic, n, rate, seconds),  # type: ignore[misc]
            )
            for n in RELAY_COUNTS
        ]
        result.add_case(
            "steady rate", steady, interleave(runs, steady), baseline="1 relay(s)",
            params={"offered_rows_per_s": rate, "seconds": seconds},
        )  # fmt: skip
    _reset(env)
    return result
