"""``python -m demo ingest-chaos`` (``make ingest-chaos``): the story's failure at the HTTP door.

Two upstreams post the same clicks (same seed) through a proxy that loses a share of the
answers after the server committed, and both retry what they saw fail:

- one with the recipe: an Idempotency-Key per click, the same on every retry, to
  ``oncepipe ingest``;
- one without keys, to the ingest's naive endpoint (a fresh event per request, as the story's
  pipeline did).

Each server routes to its own topic, which an ``oncepipe consume`` group with the click handler
counts; the counters are compared with the distinct clicks the upstreams meant. Exit 0 only if
the keyed door's counters equal the truth exactly.

Public names: ``ChaosPlan``, ``run_ingest_chaos``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from demo.http_door import start_ingest
from demo.processes import DEMO, Workers, say
from demo.watch import Watch
from oncepipe.db import connect
from oncepipe.settings import Settings

__all__ = ["ChaosPlan", "run_ingest_chaos"]

_REPORT_LINE = re.compile(r"^(http_\w+|distinct_events|seconds)\t(\S+)$")


@dataclass(frozen=True)
class ChaosPlan:
    """The size of the run."""

    clicks: int = 20_000
    drop_rate: float = 0.1
    concurrency: int = 16
    seed: int = 24
    output: Path = Path("demo-output/ingest-chaos")
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class DoorFigures:
    """What one upstream sent and what its pipeline counted."""

    door: str
    clicks: int
    requests: int
    lost_answers: int
    replays: int
    topic_records: int
    counted: int
    items_over: int
    seconds: float

    @property
    def over(self) -> int:
        """Counted minus meant."""
        return self.counted - self.clicks


def _truth(manifest: Path) -> Counter[str]:
    truth: Counter[str] = Counter()
    for line in manifest.read_text().splitlines():
        submission = json.loads(line)
        if submission["kind"] == "event":
            truth[submission["item_id"]] += 1
    return truth


def _simulator_report(log: Path) -> dict[str, float]:
    found = {}
    for line in log.read_text().splitlines():
        match = _REPORT_LINE.match(line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def _counts(conn: Any, group: str) -> Counter[str]:
    rows = conn.execute(
        "SELECT item_id, sum(count) FROM public.item_click_counts WHERE consumer_group = %s"
        " GROUP BY item_id",
        (group,),
    ).fetchall()
    return Counter({str(item): int(n) for item, n in rows})


def table(figures: list[DoorFigures], plan: ChaosPlan) -> str:
    """The run as a Markdown table."""
    lines = [
        f"{plan.clicks:,} clicks per upstream, {plan.drop_rate:.0%} of the answers lost after "
        f"the server committed, {plan.concurrency} requests at once, seed {plan.seed}",
        "",
        "| door | clicks meant | requests sent | answers lost | replays | records on topic "
        "| counted | over-count | items over-counted | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f.door} | {f.clicks:,} | {f.requests:,} | {f.lost_answers:,} | {f.replays:,} "
        f"| {f.topic_records:,} | {f.counted:,} | {f.over:+,} ({f.over / f.clicks:+.1%}) "
        f"| {f.items_over} | {f.seconds:.1f} |"
        for f in figures
    ]
    return "\n".join(lines) + "\n"


def run_ingest_chaos(settings: Settings, plan: ChaosPlan) -> list[DoorFigures]:
    """Run both doors and return their figures (keyed first)."""
    logs = plan.output / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, logs)
    doors = {"keyed": False, "naive": True}
    topics = {door: f"ingest.chaos.{plan.run_id}.{door}" for door in doors}
    groups = {door: f"ingest-chaos-{door}-{plan.run_id}" for door in doors}
    say(f"run {plan.run_id}: topics {', '.join(topics.values())}; output in {plan.output}/")
    workers.run("migrate")
    for topic in topics.values():
        workers.run("topics", "create", "--topic", topic)
    try:
        workers.start("relay", "relay", "--poll-interval", "0.5")
        for door, naive in doors.items():
            server = start_ingest(workers, f"ingest-{door}", plan.output, topics[door],
                                  run_id=plan.run_id, naive=naive)  # fmt: skip
            workers.start(f"consume-{door}", "consume", "--group", groups[door], "--topic",
                          topics[door], "--handler", "clicks", "--batch-size", "500")  # fmt: skip
            workers.start(
                f"upstream-{door}", "simulate", "--mode", "http", "--url", server.url,
                "--api-key-file", str(server.key_file), "--drop-rate", str(plan.drop_rate),
                "--count", str(plan.clicks), "--seed", str(plan.seed),
                "--concurrency", str(plan.concurrency),
                "--manifest", str(plan.output / f"{door}.jsonl"),
                *(["--naive"] if naive else []), program=DEMO,
            )  # fmt: skip
        say(f"two upstreams post {plan.clicks:,} clicks each through a proxy losing "
            f"{plan.drop_rate:.0%} of the answers; both retry")  # fmt: skip
        figures = []
        with (
            connect(settings, "oncepipe-ingest-chaos", autocommit=True) as conn,
            Watch(settings, conn) as watch,
        ):
            for door in doors:
                workers.wait(f"upstream-{door}", timeout=3600)
            for door in doors:
                group, topic = groups[door], topics[door]
                watch.wait(partial(watch.settled, group, topic), 600,
                           f"the {door} group to consume its topic")  # fmt: skip
                truth = _truth(plan.output / f"{door}.jsonl")
                counted = _counts(conn, groups[door])
                sent = _simulator_report(logs / f"upstream-{door}.log")
                figures.append(
                    DoorFigures(
                        door=door,
                        clicks=sum(truth.values()),
                        requests=int(sent.get("http_requests", 0)),
                        lost_answers=int(sent.get("http_lost_answers", 0)),
                        replays=int(sent.get("http_replays", 0)),
                        topic_records=watch.records(topics[door]),
                        counted=sum(counted.values()),
                        items_over=sum(1 for item, n in counted.items() if n > truth[item]),
                        seconds=sent.get("seconds", 0.0),
                    )
                )
    finally:
        workers.stop_all()
    return figures
