"""``python -m bench --only flink``: oncepipe's consumer beside the Flink peer, same records.

Both read one topic of click events with 20% duplicate records (six partitions) and write raw
rows plus the per-item and per-user-item counters into one PostgreSQL cluster, the benchmark's
own (``bench.flink_run.BenchPostgres``: prepared transactions on, which the Flink sink needs):
oncepipe's worker (``python -m bench.effects``, the click handler, batch 500) into its own
tables, the Flink job (one JVM, checkpoints every second, XA sink) into the ``flink_`` tables.

- **throughput**: distinct events per second from the first committed row to the last (the
  JVM's start-up and the first checkpoint are outside the window), CPU seconds per 1000 events of
  each side's process, the benchmark's PostgreSQL and the broker over the whole run, and each
  process's peak resident set (``VmHWM``).
- **latency**: 1000 events/s for each side, the Flink job with checkpoints every 1, 5 and 30 s
  (``bench.flink_latency``).
- **faults**: one SIGKILL of each side once about a third of the events are visible, then a
  restart (the Flink job from its newest retained checkpoint, oncepipe's worker plainly): the
  time from the restart to the next committed row and to the end, how many rows were visible at
  the kill, and the exactness check (rows and counters equal those of each event applied once).
  The Flink job is killed twice: with its plain XA write and with ``--write xa-if-new``.

Writes ``bench/results/flink.json`` and its plot ``flink.png``; nothing is asserted (exactness
and failures are reported).

Public names: ``run_flink``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.consumer_clicks import clicks, produce
from bench.env import BenchEnv
from bench.flink_latency import measure_latency
from bench.flink_plot import plot_flink
from bench.flink_run import (
    BenchPostgres,
    FlinkJob,
    applied_rows,
    effects,
    expected,
    latest_checkpoint,
)
from bench.results import RESULTS_DIR
from bench.services import ServiceCpu
from oncepipe.settings import load_settings
from schemas import ClickEvent

__all__ = ["run_flink"]

CHECKPOINT_MS = (1000, 5000, 30000)
LATENCY_RATE = 1000

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int, *, tree: bool = False) -> float:
    """CPU seconds of ``pid`` (and, with ``tree``, its live children: PostgreSQL's backends)."""
    pids = [pid]
    if tree:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
    total = 0.0
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / _TICKS
    return total


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Oncepipe:
    """oncepipe's worker process on the benchmark's cluster."""

    def __init__(self, url: str, topic: str, group: str, workdir: Path) -> None:
        self._cmd = [
            sys.executable, "-m", "bench.effects", "--topic", topic, "--group", group,
            "--out", str(workdir / "effects.log"),
        ]  # fmt: skip
        self._env = {**os.environ, "ONCEPIPE_DATABASE_URL": url}
        workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self._cmd, env=self._env)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def _wait_rows(count: Callable[[], int], target: int, alive: Callable[[], bool]) -> float:
    """Wait until ``count()`` reaches ``target``; the time it did (raises if the side died)."""
    while (done := count()) < target:
        if not alive():
            raise RuntimeError(f"the process ended with {done} of {target} rows committed")
        time.sleep(0.05)
    return time.monotonic()


def _runner(side: str, url: str, topic: str, group: str, workdir: Path) -> FlinkJob | _Oncepipe:
    if side == "flink":
        bootstrap = load_settings().kafka_bootstrap_servers
        return FlinkJob(url=url, bootstrap=bootstrap, topic=topic, group=group, workdir=workdir)
    return _Oncepipe(url, topic, group, workdir)


def _alive(runner: FlinkJob | _Oncepipe) -> Callable[[], bool]:
    return lambda: runner.process is not None and runner.process.poll() is None


def _throughput(
    side: str, url: str, *, pg_pid: int, records: list[ClickEvent], topic: str, workdir: Path
) -> dict[str, Any]:
    """One side through every record: rate, CPU per event, peak RSS, exactness."""
    distinct = len({e.event_id for e in records})
    group = f"{side}-{uuid.uuid4().hex[:8]}"
    prefix = "flink_" if side == "flink" else ""
    runner = _runner(side, url, topic, group, workdir)
    services = ServiceCpu()
    before = (services.snapshot().get("kafka", 0.0), _cpu_s(pg_pid, tree=True))
    runner.start()
    if runner.process is None:
        raise RuntimeError(f"{side}: no process after start")
    pid = runner.process.pid
    alive = _alive(runner)

    def count() -> int:
        return applied_rows(url, group, prefix)

    _wait_rows(count, 1, alive)
    first_at, first = time.monotonic(), count()
    last_at = _wait_rows(count, distinct, alive)
    side_cpu = _cpu_s(pid)
    rss = _peak_rss_mb(pid)
    after = (services.snapshot().get("kafka", 0.0), _cpu_s(pg_pid, tree=True))
    runner.stop()
    exact = effects(url, group, prefix) == expected(records)
    per_k = 1000 / distinct
    return {
        "events_per_s": round((distinct - first) / max(last_at - first_at, 1e-9)),
        "cpu_s_per_1k_events": {
            side: round(side_cpu * per_k, 3),
            "postgres": round((after[1] - before[1]) * per_k, 3),
            "kafka": round((after[0] - before[0]) * per_k, 3),
        },
        "peak_rss_mb": round(rss, 1) if rss is not None else None,
        "exact": exact,
    }


def _fault(
    side: str, url: str, records: list[ClickEvent], topic: str, workdir: Path, *, write: str = "xa"
) -> dict[str, Any]:
    """One SIGKILL once a third of the events are visible, a restart, the end and the check."""
    distinct = len({e.event_id for e in records})
    group = f"{side}-kill-{uuid.uuid4().hex[:8]}"
    prefix = "flink_" if side == "flink" else ""
    if side == "flink":
        bootstrap = load_settings().kafka_bootstrap_servers
        runner: FlinkJob | _Oncepipe = FlinkJob(
            url=url, bootstrap=bootstrap, topic=topic, group=group, workdir=workdir, write=write
        )
    else:
        runner = _Oncepipe(url, topic, group, workdir)

    def count() -> int:
        return applied_rows(url, group, prefix)

    runner.start()
    _wait_rows(count, distinct // 3, _alive(runner))
    runner.kill()
    at_kill = count()
    if at_kill >= distinct:
        raise RuntimeError(f"{side} finished all {distinct} events before the kill: use more")
    restore = latest_checkpoint(runner.checkpoints) if isinstance(runner, FlinkJob) else None
    restarted = time.monotonic()
    if isinstance(runner, FlinkJob):
        runner.start(restore=restore)
    else:
        runner.start()
    out: dict[str, Any] = {
        "rows_visible_at_kill": at_kill,
        "restored_from": restore.name if restore is not None else None,
    }
    try:
        progress = _wait_rows(count, at_kill + 1, _alive(runner))
        done = _wait_rows(count, distinct, _alive(runner))
    except RuntimeError as exc:
        cause = runner.first_cause() if isinstance(runner, FlinkJob) else ""
        return {**out, "failed": f"{exc}; {cause}", "exact": False}
    finally:
        runner.stop()
    return {
        **out,
        "restart_to_next_commit_s": round(progress - restarted, 2),
        "restart_to_end_s": round(done - restarted, 2),
        "exact": effects(url, group, prefix) == expected(records),
    }


def _latency(
    env: BenchEnv, url: str, side: str, *, checkpoint_ms: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    """One side at 1000 events/s for ``seconds`` on a fresh topic."""
    group = f"{side}-latency-{uuid.uuid4().hex[:8]}"
    with env.topic("flink-latency") as topic:
        if side == "flink":
            runner: FlinkJob | _Oncepipe = FlinkJob(
                url=url, bootstrap=env.settings.kafka_bootstrap_servers, topic=topic,
                group=group, workdir=workdir, checkpoint_ms=checkpoint_ms,
            )  # fmt: skip
        else:
            runner = _Oncepipe(url, topic, group, workdir)
        try:
            return measure_latency(
                env.settings, url, topic=topic, group=group,
                table=f"public.{'flink_' if side == 'flink' else ''}click_events",
                rate=LATENCY_RATE, seconds=seconds, ready=runner.start,
            )  # fmt: skip
        finally:
            runner.stop()


def run_flink(env: BenchEnv, *, quick: bool) -> Path:
    """Both sides on the same records, then one kill each; writes bench/results/flink.json."""
    events = 5_000 if quick else 50_000
    records = clicks(events, 0.2, seed=11)
    postgres = BenchPostgres()
    url = postgres.start()
    pg_pid = postgres.pid()
    if pg_pid is None:
        raise RuntimeError("the benchmark's PostgreSQL has no postmaster pid after its start")
    result: dict[str, Any] = {
        "quick": quick, "distinct_events": events, "records": len(records),
        "flink": {"checkpoint_ms": 1000, "parallelism": 1, "heap": "-Xmx512m"},
        "oncepipe": {"batch_size": 500},
    }  # fmt: skip
    try:
        with env.topic("flink") as topic, tempfile.TemporaryDirectory() as tmp:
            produce(env.settings, topic, records)
            for side in ("oncepipe", "flink"):
                result[side]["throughput"] = _throughput(
                    side, url, pg_pid=pg_pid, records=records, topic=topic, workdir=Path(tmp) / side
                )
            for side in ("oncepipe", "flink"):
                result[side]["latency"] = {}
                for interval in CHECKPOINT_MS if side == "flink" else (0,):
                    seconds = max(10.0 if quick else 30.0, 2.5 * interval / 1000)
                    label = f"checkpoint {interval // 1000} s" if interval else "batch 500"
                    result[side]["latency"][label] = _latency(
                        env, url, side, checkpoint_ms=interval, seconds=seconds,
                        workdir=Path(tmp) / f"{side}-latency-{interval}",
                    )  # fmt: skip
        with env.topic("flink-fault") as topic, tempfile.TemporaryDirectory() as tmp:
            # More events than the throughput run: the kill must land before the end.
            many = clicks(4 * events, 0.2, seed=13)
            produce(env.settings, topic, many)
            result["oncepipe"]["fault"] = _fault("oncepipe", url, many, topic, Path(tmp) / "o")
            for write in ("xa", "xa-if-new"):
                result["flink"][f"fault ({write})"] = _fault(
                    "flink", url, many, topic, Path(tmp) / write, write=write
                )
    finally:
        postgres.stop()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "flink.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    plot_flink()
    return path
