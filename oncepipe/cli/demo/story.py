"""The demo story, step by step: upstream retries, crashes, naive counters vs oncepipe's.

1. Migrate and create a fresh topic (and its .dlq) for this run.
2. Start the relay, two ``oncepipe consume`` workers in one group, and the naive consumer in
   its own group.
3. Two upstream simulators submit click signals: one through the outbox (its retries carry the
   same idempotency key), one straight to Kafka (its re-sends after timeouts become duplicate
   records on the topic).
4. Mid-run, SIGKILL one oncepipe worker and the naive consumer, and restart both.
5. Wait until everything is drained, then compare both pipelines' counters with the truth
   recomputed from what the simulators submitted.

Public names: ``DemoPlan``, ``run_story``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncepipe.cli.demo.naive import create_naive_tables, naive_counts
from oncepipe.cli.demo.report import DemoFigures
from oncepipe.db import connect
from oncepipe.kafka import Consumer, TopicPartition
from oncepipe.settings import Settings

__all__ = ["DemoPlan", "run_story"]

ONCEPIPE = [sys.executable, "-c", "from oncepipe.cli.main import run; run()"]


@dataclass(frozen=True)
class DemoPlan:
    """The size of the story."""

    events: int = 4000
    duplicate_rate: float = 0.15
    rate: float = 400.0
    seed: int = 7
    output: Path = Path("demo-output")
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


def say(message: str) -> None:
    """Narrate a step on stderr."""
    print(f"[demo] {message}", file=sys.stderr, flush=True)


class Workers:
    """The processes the demo starts; all of them stopped at the end, whatever happens."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self._env = {
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "ONCEPIPE_DATABASE_URL": settings.database_url.get_secret_value(),
            "ONCEPIPE_LOG_FORMAT": "json",
        }
        self._logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: list[str] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``oncepipe ARGS`` as a named process logging to the demo's log folder."""
        import os  # noqa: PLC0415 - only the demo needs the parent environment

        log = (self._logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [*ONCEPIPE, *args], env={**os.environ, **self._env}, stdout=log, stderr=log
        )
        self.running[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL a worker, as a crash would."""
        proc = self.running[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.kills.append(f"SIGKILL {name}")

    def wait(self, name: str, timeout: float) -> int:
        """Wait for a process that ends on its own (a simulator)."""
        code = self.running[name].wait(timeout)
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}; see {self._logs / name}.log")
        return code

    def stop_all(self) -> None:
        """SIGTERM every process still running; SIGKILL what does not stop in 30 s."""
        for proc in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _truth(manifests: list[Path]) -> tuple[dict[str, int], int]:
    counts: Counter[str] = Counter()
    distinct = 0
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            submission = json.loads(line)
            if submission["kind"] == "event":
                counts[submission["item_id"]] += 1
                distinct += 1
    return dict(counts), distinct


def _topic_records(settings: Settings, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "x"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def _oncepipe_counts(conn: Any, group: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT item_id, sum(count) FROM public.item_click_counts WHERE consumer_group = %s"
        " GROUP BY item_id",
        (group,),
    ).fetchall()
    return {item: int(n) for item, n in rows}


def _wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_story(settings: Settings, plan: DemoPlan) -> DemoFigures:
    """Run the whole story and return the measured figures."""
    started = time.monotonic()
    logs = plan.output / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    topic = f"demo.clicks.{plan.run_id}"
    group, naive_group = f"demo-oncepipe-{plan.run_id}", f"demo-naive-{plan.run_id}"
    workers = Workers(settings, logs)
    say(f"run {plan.run_id}: topic {topic}, output in {plan.output}/")
    subprocess.run([*ONCEPIPE, "migrate"], check=True, capture_output=True)
    subprocess.run([*ONCEPIPE, "topics", "create", "--topic", topic], check=True,
                   capture_output=True)  # fmt: skip
    with connect(settings, "oncepipe-demo", autocommit=True) as conn:
        create_naive_tables(conn)
    try:
        consume = ["consume", "--group", group, "--topic", topic, "--handler", "clicks",
                   "--session-timeout-ms", "6000", "--batch-size", "200"]  # fmt: skip
        workers.start("relay", "relay", "--poll-interval", "0.5")
        workers.start("oncepipe-1", *consume)
        workers.start("oncepipe-2", *consume)
        workers.start("naive", "demo", "naive-consumer", "--run", plan.run_id,
                      "--group", naive_group, "--topic", topic)  # fmt: skip
        say("relay, two oncepipe workers and the naive consumer are running")

        half = plan.events // 2
        manifests = [plan.output / "outbox-upstream.jsonl", plan.output / "direct-upstream.jsonl"]
        common = ["--topic", topic, "--count", str(half), "--duplicate-rate",
                  str(plan.duplicate_rate), "--rate", str(plan.rate / 2)]  # fmt: skip
        workers.start("upstream-outbox", "simulate", "--mode", "outbox", *common,
                      "--seed", str(plan.seed), "--manifest", str(manifests[0]))  # fmt: skip
        workers.start("upstream-direct", "simulate", "--mode", "direct", *common,
                      "--seed", str(plan.seed + 1), "--manifest", str(manifests[1]))  # fmt: skip
        say(f"two upstream services submit {2 * half} click signals, re-sending "
            f"{plan.duplicate_rate:.0%} after timeouts")  # fmt: skip

        # Half-way through the upstreams: both consumers are busy with uncommitted work.
        time.sleep(max(5.0, half / (plan.rate / 2) * 0.5))
        say("crash: SIGKILL oncepipe-1 and the naive consumer mid-run, then restart them")
        workers.kill("oncepipe-1")
        workers.kill("naive")
        time.sleep(2.0)
        workers.start("oncepipe-1", *consume)
        workers.start("naive", "demo", "naive-consumer", "--run", plan.run_id,
                      "--group", naive_group, "--topic", topic)  # fmt: skip

        workers.wait("upstream-outbox", timeout=600)
        workers.wait("upstream-direct", timeout=600)
        truth, distinct = _truth(manifests)
        records = _topic_records(settings, topic)
        say(f"upstreams done: {distinct} distinct events, {records} records on the topic so far")

        with connect(settings, "oncepipe-demo", autocommit=True) as conn:
            _wait_until(
                lambda: sum(_oncepipe_counts(conn, group).values()) >= distinct,
                timeout=300,
                what="oncepipe to apply every event",
            )
            records = _topic_records(settings, topic)
            _wait_until(
                lambda: naive_counts(conn, plan.run_id)[1] >= records,
                timeout=300,
                what="the naive consumer to read the whole topic",
            )
            time.sleep(3.0)  # let late redeliveries land before reading the counters
            naive, delivered = naive_counts(conn, plan.run_id)
            applied = _oncepipe_counts(conn, group)
    finally:
        workers.stop_all()
    return DemoFigures(
        distinct_events=distinct,
        topic_records=records,
        truth=truth,
        naive=naive,
        oncepipe=applied,
        naive_deliveries=delivered,
        wall_seconds=time.monotonic() - started,
        kills=workers.kills,
    )
