"""The demo story, step by step: upstream retries, crashes, poison, naive counters vs oncepipe's.

1. Migrate, create a fresh topic (and its .dlq) for this run, and the run's item catalog.
2. Start the relay, two ``oncepipe consume`` workers in one group (the catalog handler), and
   the naive consumer in its own group.
3. Two upstream simulators submit click signals: one through the outbox (its retries carry the
   same idempotency key), one straight to Kafka (its re-sends after timeouts become duplicate
   records on the topic); a third posts to ``oncepipe ingest`` through a proxy that loses a
   tenth of the answers, retrying with the same Idempotency-Key. The first two also submit a
   few poison records (corrupt bodies, an invalid field) and a few clicks on items launched
   during the run, which the catalog does not list.
4. Mid-run, SIGKILL one oncepipe worker and the naive consumer, and restart both.
5. Wait until everything is consumed and the dead letters are published; read the naive
   consumer's counters and stop it (replays are oncepipe's own; it would count them again).
6. ``oncepipe dlq list``; the fix (the catalog learns the new items); ``oncepipe dlq replay``
   of the clicks the catalog refused; wait until the replays are consumed.
7. Compare both pipelines' counters with the truth recomputed from what the simulators
   submitted: every valid click, the ones on new items included.

Public names: ``DemoPlan``, ``run_story``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.deadletters import DlqListing, ReplayResult, list_dead_letters, replay_fixed
from demo.http_door import start_ingest
from demo.items import HANDLER, add_items, create_catalog
from demo.naive import create_naive_tables, naive_tally
from demo.processes import DEMO, Workers, say
from demo.report import DemoFigures
from demo.watch import Watch
from oncepipe.db import connect
from oncepipe.settings import Settings

__all__ = ["DemoPlan", "run_story"]

HTTP_DROP_RATE = 0.1
"""Share of the HTTP upstream's answers the proxy loses after the server committed."""
ITEMS = 50
"""Items the upstreams click on, all in the catalog before the run (``item-0`` ...)."""


@dataclass(frozen=True)
class DemoPlan:
    """The size of the story."""

    events: int = 4000
    duplicate_rate: float = 0.15
    rate: float = 400.0
    poison: float = 3.0
    """Poison submissions per upstream, on average."""
    new_item_clicks: float = 3.0
    """Clicks on items launched during the run, per upstream, on average."""
    seed: int = 7
    http_clicks: int = 300
    """Clicks of the HTTP upstream (``oncepipe ingest`` behind a lossy proxy); 0: none."""
    output: Path = Path("demo-output")
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass(frozen=True)
class Submitted:
    """What the upstreams submitted, from their manifests."""

    truth: dict[str, int]
    """Clicks per item: every distinct valid event, once."""
    poison: dict[str, int]

    @property
    def distinct(self) -> int:
        """Distinct valid events."""
        return sum(self.truth.values())

    @property
    def new_item_events(self) -> int:
        """Distinct events on items launched during the run."""
        return sum(n for item, n in self.truth.items() if item.startswith("new-item-"))


def _submitted(manifests: list[Path]) -> Submitted:
    truth: Counter[str] = Counter()
    poison: Counter[str] = Counter()
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            submission = json.loads(line)
            if submission["kind"] == "event":
                truth[submission["item_id"]] += 1
            elif submission["kind"] == "poison":
                poison[submission["poison_kind"]] += 1
    return Submitted(dict(truth), dict(poison))


def _oncepipe_counts(conn: Any, group: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT item_id, sum(count) FROM public.item_click_counts WHERE consumer_group = %s"
        " GROUP BY item_id",
        (group,),
    ).fetchall()
    return {item: int(n) for item, n in rows}


def _start_http_upstream(workers: Workers, plan: DemoPlan, topic: str) -> Path:
    """A third upstream posting to ``oncepipe ingest`` through a proxy losing answers."""
    door = start_ingest(workers, "ingest", plan.output, topic, run_id=plan.run_id)
    manifest = plan.output / "http-upstream.jsonl"
    workers.start("upstream-http", "simulate", "--mode", "http", "--url", door.url,
                  "--api-key-file", str(door.key_file), "--drop-rate", str(HTTP_DROP_RATE),
                  "--count", str(plan.http_clicks), "--items", str(ITEMS),
                  "--seed", str(plan.seed + 2), "--concurrency", "4",
                  "--manifest", str(manifest), program=DEMO)  # fmt: skip
    say(f"an HTTP upstream posts {plan.http_clicks} clicks to oncepipe ingest through a proxy "
        f"losing {HTTP_DROP_RATE:.0%} of the answers; it retries with the same key")  # fmt: skip
    return manifest


def _start_upstreams(workers: Workers, plan: DemoPlan, topic: str) -> list[Path]:
    half = plan.events // 2
    manifests = [plan.output / "outbox-upstream.jsonl", plan.output / "direct-upstream.jsonl"]
    common = ["--topic", topic, "--count", str(half), "--items", str(ITEMS),
              "--duplicate-rate", str(plan.duplicate_rate), "--rate", str(plan.rate / 2),
              "--poison-rate", str(min(1.0, plan.poison / half)),
              "--new-item-rate", str(min(1.0, plan.new_item_clicks / half))]  # fmt: skip
    workers.start("upstream-outbox", "simulate", "--mode", "outbox", *common,
                  "--seed", str(plan.seed), "--manifest", str(manifests[0]),
                  program=DEMO)  # fmt: skip
    workers.start("upstream-direct", "simulate", "--mode", "direct", *common,
                  "--seed", str(plan.seed + 1), "--manifest", str(manifests[1]),
                  program=DEMO)  # fmt: skip
    say(f"two upstream services submit {2 * half} click signals, re-sending "
        f"{plan.duplicate_rate:.0%} after timeouts, with a few poison records and clicks on "
        "items launched during the run")  # fmt: skip
    if plan.http_clicks:
        manifests.append(_start_http_upstream(workers, plan, topic))
    return manifests


def _say_dead_letters(listing: DlqListing) -> None:
    say(f"$ {listing.command}")
    for line in listing.text().splitlines():
        say(f"  {line}")
    stages = ", ".join(f"{n} {stage}" for stage, n in listing.by_stage().items())
    say(f"{len(listing.rows)} dead letter(s): {stages or 'none'}")


def _fix_and_replay(
    workers: Workers, conn: Any, group: str, dlq_topic: str, items: list[str]
) -> tuple[list[str], ReplayResult]:
    added = add_items(conn, group, items)
    say("the fix: the catalog learns the items launched during the run: "
        f"{', '.join(added) or 'none were missing'}")  # fmt: skip
    result = replay_fixed(workers, dlq_topic)
    say(f"$ {result.command}")
    say(f"replayed {len(result.sent)} dead letter(s) refused for a missing item; the corrupt "
        "bodies and invalid fields stay dead-lettered")  # fmt: skip
    return added, result


@dataclass(frozen=True)
class _Names:
    """The run's topics, groups and worker command lines."""

    run_id: str

    @property
    def topic(self) -> str:
        return f"demo.clicks.{self.run_id}"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def group(self) -> str:
        return f"demo-oncepipe-{self.run_id}"

    def consume(self) -> list[str]:
        return ["consume", "--group", self.group, "--topic", self.topic, "--handler", HANDLER,
                "--session-timeout-ms", "6000", "--batch-size", "200"]  # fmt: skip

    @property
    def naive_group(self) -> str:
        return f"demo-naive-{self.run_id}"

    def naive(self) -> list[str]:
        return ["naive-consumer", "--run", self.run_id, "--group", self.naive_group,
                "--topic", self.topic]  # fmt: skip


def _submit_with_a_crash(workers: Workers, plan: DemoPlan, names: _Names) -> Submitted:
    workers.start("relay", "relay", "--poll-interval", "0.5")
    workers.start("oncepipe-1", *names.consume())
    workers.start("oncepipe-2", *names.consume())
    workers.start("naive", *names.naive(), program=DEMO)
    say(f"relay, two oncepipe workers (their handler checks each click's item against a catalog "
        f"of {ITEMS} items) and the naive consumer are running")  # fmt: skip
    manifests = _start_upstreams(workers, plan, names.topic)

    # Half-way through the upstreams: both consumers are busy with uncommitted work.
    time.sleep(max(5.0, plan.events / plan.rate * 0.5))
    say("crash: SIGKILL oncepipe-1 and the naive consumer mid-run, then restart them")
    workers.kill("oncepipe-1")
    workers.kill("naive")
    time.sleep(2.0)
    workers.start("oncepipe-1", *names.consume())
    workers.start("naive", *names.naive(), program=DEMO)

    workers.wait("upstream-outbox", timeout=600)
    workers.wait("upstream-direct", timeout=600)
    if plan.http_clicks:
        workers.wait("upstream-http", timeout=600)
    submitted = _submitted(manifests)
    say(f"upstreams done: {submitted.distinct} distinct events and "
        f"{sum(submitted.poison.values())} poison records submitted")  # fmt: skip
    return submitted


def _settle_and_replay(
    workers: Workers, conn: Any, watch: Watch, names: _Names, submitted: Submitted
) -> DemoFigures:
    group, topic = names.group, names.topic
    watch.wait(lambda: watch.settled(group, topic), 300,
               "oncepipe to consume the topic and publish its dead letters")  # fmt: skip
    records = watch.records(topic)
    # Its auto-commit (every 5 s) says it was handed every record; then its last writes land.
    watch.wait(lambda: watch.committed_to_end(names.naive_group, topic), 300,
               "the naive consumer to read the whole topic")  # fmt: skip
    time.sleep(1.0)
    tally = naive_tally(conn, names.run_id)
    workers.stop("naive")
    before = sum(_oncepipe_counts(conn, group).values())
    say(f"oncepipe applied {before} of {submitted.distinct} clicks; the others wait in "
        f"{names.dlq_topic}")  # fmt: skip

    listing = list_dead_letters(workers, names.dlq_topic)
    _say_dead_letters(listing)
    added, replayed = _fix_and_replay(workers, conn, group, names.dlq_topic, list(submitted.truth))
    watch.wait(lambda: watch.settled(group, topic), 120,
               "oncepipe to consume the replayed dead letters")  # fmt: skip
    applied = _oncepipe_counts(conn, group)
    from_replay = watch.records(names.dlq_topic) - len(listing.rows)
    remaining = len(listing.rows) - len(replayed.sent) + from_replay
    say(f"after the replay: oncepipe counts {sum(applied.values())} of {submitted.distinct} "
        f"clicks; {remaining} dead letter(s) remain")  # fmt: skip
    return DemoFigures(
        distinct_events=submitted.distinct,
        topic_records=records,
        truth=submitted.truth,
        naive=tally.counts,
        oncepipe=applied,
        naive_deliveries=tally.delivered,
        naive_dropped=tally.dropped,
        poison_submitted=submitted.poison,
        new_item_events=submitted.new_item_events,
        oncepipe_total_before_replay=before,
        dead_letters_before_replay=len(listing.rows),
        dead_letters_by_stage=listing.by_stage(),
        catalog_items_added=added,
        dead_letters_replayed=len(replayed.sent),
        dead_letters_applied_after_replay=sum(applied.values()) - before,
        dead_letters_after_replay=remaining,
        dead_letters_from_replay=from_replay,
        dlq_list_command=listing.command,
        dlq_list=listing.rows,
        dlq_replay_command=replayed.command,
    )


def run_story(settings: Settings, plan: DemoPlan) -> DemoFigures:
    """Run the whole story and return the measured figures."""
    started = time.monotonic()
    logs = plan.output / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    names = _Names(plan.run_id)
    workers = Workers(settings, logs)
    say(f"run {plan.run_id}: topic {names.topic}, output in {plan.output}/")
    workers.run("migrate")
    workers.run("topics", "create", "--topic", names.topic)
    with connect(settings, "oncepipe-demo", autocommit=True) as conn:
        create_naive_tables(conn)
        create_catalog(conn, names.group, [f"item-{n}" for n in range(ITEMS)])
    try:
        submitted = _submit_with_a_crash(workers, plan, names)
        with (
            connect(settings, "oncepipe-demo", autocommit=True) as conn,
            Watch(settings, conn) as watch,
        ):
            figures = _settle_and_replay(workers, conn, watch, names, submitted)
    finally:
        workers.stop_all()
    figures.wall_seconds = time.monotonic() - started
    figures.kills = workers.kills
    return figures
