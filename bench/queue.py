"""Queue mode (share groups) beside the partition-based consumer, on a 2-partition topic.

Each run starts N ``oncepipe consume`` workers of a fresh group (``--mode partition`` or
``--mode queue``) on a fresh 2-partition topic, waits until every worker has joined (a consumer
group Stable with N members; N live rows in ``oncepipe.queue_members``), so no rebalance falls
inside the timed span, then produces the events at once (pre-encoded) and waits until every
event has its inbox row. The clock is PostgreSQL's:
from the first inbox row's ``applied_at`` (its transaction's start) to the last, so process
starts and group joins are not timed.

- ``workers``: 2, 4 and 6 workers. A consumer group uses at most 2 of them (one per
  partition); a share group uses all. On a 2-core machine the workers, the broker and
  PostgreSQL share the two cores: past 2 busy workers the CPU, not the partition count, binds.
- ``one slow record``: 4 workers, one event early in partition 0 whose handler sleeps
  ``SLOW_S``. Timed: until 95 % of the events are applied; beside it ``held_applied``, the
  events applied while the slow record's batch was held (from its transaction's start for
  ``SLOW_S``). The partition consumer holds every record behind the slow one in its partition;
  the share group hands them to other workers, but only within the share partition's window of
  in-flight records (``share.partition.max.record.locks``, 2,000 by default, at most 4,000 per
  group): past it, the partition waits for the slow record too.

Public names: ``run_queue``, ``slow_one_clicks``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from bench.env import BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from consumers.context import HandlerContext
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from schemas import ClickEvent, Codec

__all__ = ["run_queue", "slow_one_clicks"]

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
PARTITIONS = 2
SLOW_ITEM = "slow-item"
SLOW_S = float(os.environ.get("BENCH_QUEUE_SLOW_S", "10"))
RESET = (
    "TRUNCATE public.click_events, public.item_click_counts, public.user_item_click_counts,"
    " oncepipe.inbox, oncepipe.consumer_offsets"
)


def slow_one_clicks(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    """The clicks handler; a batch holding the slow item sleeps ``SLOW_S`` first."""
    if any(isinstance(e.event, ClickEvent) and e.event.item_id == SLOW_ITEM for e in events):
        time.sleep(SLOW_S)
    handle_clicks(events, tx)


def _applied(env: BenchEnv, group: str) -> list[float]:
    with env.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM applied_at) FROM oncepipe.inbox"
            " WHERE consumer_group = %s ORDER BY applied_at",
            (group,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def _wait_joined(env: BenchEnv, mode: str, group: str, workers: int) -> None:
    """Block until all ``workers`` are members (the partition group Stable), at most 180 s."""
    admin = AdminClient({"bootstrap.servers": env.settings.kafka_bootstrap_servers})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if mode == "partition":
            described = admin.describe_consumer_groups([group])[group].result(timeout=10)
            joined = (
                described.state == ConsumerGroupState.STABLE and len(described.members) == workers
            )
        else:
            with env.connect(autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM oncepipe.queue_members"
                    " WHERE consumer_group = %s AND left_at IS NULL",
                    (group,),
                ).fetchone()
            joined = row is not None and row[0] == workers
        if joined:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{mode} x{workers}: the workers did not all join {group} in 180 s")


def _held_applied(env: BenchEnv, group: str) -> int:
    """Events applied while the slow record's batch slept (from its transaction's start)."""
    with env.connect(autocommit=True) as conn:
        row = conn.execute(
            "WITH slow AS (SELECT i.applied_at FROM oncepipe.inbox i"
            " JOIN public.click_events c USING (consumer_group, event_id)"
            " WHERE i.consumer_group = %s AND c.item_id = %s)"
            " SELECT count(*) FROM oncepipe.inbox i, slow"
            " WHERE i.consumer_group = %s AND i.applied_at > slow.applied_at"
            " AND i.applied_at < slow.applied_at + make_interval(secs => %s)",
            (group, SLOW_ITEM, group, SLOW_S),
        ).fetchone()
    return int(row[0]) if row else 0


def _run(env: BenchEnv, data: EventSet, mode: str, workers: int, *, slow: bool) -> Sample:
    """One run: ``workers`` of a fresh group on a fresh topic; returns the timed span."""
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)
    group = f"bench-queue-{uuid.uuid4().hex[:8]}"
    handler = "bench.queue:slow_one_clicks" if slow else "clicks"
    started: list[subprocess.Popen[bytes]] = []
    with env.topic("queue", PARTITIONS) as topic:
        worker_env = {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": env.database_url,
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": env.settings.kafka_bootstrap_servers,
            "ONCEPIPE_CONSUMER_MODE": mode,
            "ONCEPIPE_LOG_LEVEL": "WARNING",
            "ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S": "0.2",
        }
        try:
            for n in range(workers):
                argv = [ONCEPIPE, "consume", "--group", group, "--topic", topic,
                        "--handler", handler]  # fmt: skip
                started.append(
                    subprocess.Popen(
                        argv,
                        env={**worker_env, "ONCEPIPE_CONSUMER_CLIENT_ID": f"w{n}"},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            _wait_joined(env, mode, group, workers)
            producer = Producer(raw_config(env, idempotent=True))
            raw_send(producer, topic, data)
            deadline = time.monotonic() + 600
            while len(times := _applied(env, group)) < len(data.events):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode} x{workers}: not every event applied in 600 s")
                time.sleep(0.5)
            cpu_s = sum(_cpu_s(proc.pid) for proc in started)
        finally:
            for proc in started:
                proc.send_signal(signal.SIGTERM)
            for proc in started:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if slow:
        done_95 = times[int(len(times) * 0.95) - 1]
        span = {"all_s": times[-1] - times[0], "held_applied": float(_held_applied(env, group))}
        return Sample(len(times), done_95 - times[0], cpu_s, extra=span)
    return Sample(len(times), times[-1] - times[0], cpu_s)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live worker process, start-up and group join included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _events(count: int, codec: Codec, *, slow: bool) -> EventSet:
    data = EventSet.build("click", count, codec)
    if not slow:
        return data
    # Early in its partition: the partition-based consumer holds what follows it.
    events = list(data.events)
    events[count // 20] = events[count // 20].model_copy(update={"item_id": SLOW_ITEM})
    encoded = codec.encode_batch(events)
    return EventSet(data.kind, events, encoded, data.headers)


def run_queue(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Throughput by mode and worker count, then the slow-record case."""
    result = SuiteResult("queue", quick=quick)
    codec = Codec.load()
    count = 5_000 if quick else 20_000
    data = _events(count, codec, slow=False)
    for workers in (2, 4, 6):
        variants = [
            Variant(
                f"{mode}, {workers} workers",
                f"oncepipe consume --mode {mode}, {workers} processes",
                lambda mode=mode, workers=workers: _run(env, data, mode, workers, slow=False),  # type: ignore[misc]
            )
            for mode in ("partition", "queue")
        ]
        samples = interleave(runs, variants)
        result.add_case(
            f"{workers} workers on {PARTITIONS} partitions", variants, samples,
            baseline=variants[0].name, params={"events": count, "workers": workers},
        )  # fmt: skip
    slow_data = _events(count, codec, slow=True)
    variants = [
        Variant(
            f"{mode}, one slow record",
            f"4 workers; one event's batch sleeps {SLOW_S:g} s; timed to 95 % applied",
            lambda mode=mode: _run(env, slow_data, mode, 4, slow=True),  # type: ignore[misc]
        )
        for mode in ("partition", "queue")
    ]
    samples = interleave(runs, variants)
    result.add_case(
        "one slow record", variants, samples, baseline=variants[0].name,
        params={"events": count, "workers": 4, "slow_s": SLOW_S},
    )  # fmt: skip
    result.notes.append(
        "2 partitions: a consumer group keeps at most 2 workers busy, a share group all of "
        "them; on 2 cores the workers, the broker and PostgreSQL share the CPU."
    )
    return result
