"""Observing a worker from outside: a scrape against the database, status, probes, log lines.

Each test runs real workers on the real broker and PostgreSQL and waits on what it observes
(a scrape, a probe's answer, a status document), never on time.
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from oncepipe.settings import Settings
from producers import enqueue
from schemas import ClickAction, ClickEvent, Codec
from tests.fixtures.observe import answers, free_metrics_port, get, promtool, samples, total
from tests.fixtures.poison import (
    MAX_PAYLOAD_BYTES,
    Produced,
    good_record,
    outbox_dead_letters,
    poison_record,
    produce_records,
)
from tests.fixtures.workers import (
    ONCEPIPE,
    WorkerPool,
    caught_up,
    make_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = pytest.mark.integration

RECORDS = "oncepipe_consumer_records_total"
CODEC = Codec.load()


def click_event(n: int) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=f"u{n % 7}",
        item_id=f"item-{n % 13}",
        action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=f"s{n}",
    )


def duplicated_with_poison(seed: int) -> list[Produced]:
    """300 clicks, 20% of them again (new offsets, same event ids), 8 poison records among."""
    rng = random.Random(seed)
    events = make_clicks(300, seed=seed)
    records = [good_record(e) for e in with_duplicates(events, 0.2, seed=seed)]
    for kind in ("bad_magic", "truncated", "invalid_field", "handler") * 2:
        records.insert(rng.randrange(len(records) + 1), poison_record(kind, rng.choice(events)))
    return records


def scraped_outcomes(port: int, group: str) -> dict[str, float]:
    status, text = get(port, "/metrics")
    assert status == 200, text
    scraped = samples(text)
    return {
        outcome: total(scraped, RECORDS, group=group, outcome=outcome)
        for outcome in ("applied", "duplicate", "dead_lettered", "retried")
    }


def database_counts(url: str, group: str, dlq_topic_rows: int) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = %s", (group,)
        ).fetchone()
    assert row is not None
    return {"applied": int(row[0]), "dead_lettered": dlq_topic_rows}


def test_a_scrape_counts_what_the_database_holds(worker_pool: WorkerPool) -> None:
    """applied + duplicate + dead_lettered = records read; each equals the database's count."""
    records = produce_records(worker_pool.settings, worker_pool.topic, duplicated_with_poison(3))
    port = free_metrics_port()
    worker_pool.extra_env["ONCEPIPE_METRICS_PORT"] = str(port)
    worker = worker_pool.start(
        handler="tests.fixtures.handlers:logging_clicks",
        max_payload_bytes=str(MAX_PAYLOAD_BYTES),
        batch_size="100",
    )
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, "the worker to catch up")
    wait_until(
        lambda: sum(scraped_outcomes(port, worker_pool.group).values()) >= len(records),
        30,
        "the scrape to count every record",
    )
    outcomes = scraped_outcomes(port, worker_pool.group)
    dead = len(outbox_dead_letters(worker_pool.settings, f"{worker_pool.topic}.dlq"))
    in_database = database_counts(url, worker_pool.group, dead)
    good = [r for r in records if r.kind == "good"]
    assert outcomes["applied"] + outcomes["duplicate"] + outcomes["dead_lettered"] == len(records)
    assert outcomes["applied"] == in_database["applied"] == len({r.event_id for r in good})
    assert outcomes["dead_lettered"] == in_database["dead_lettered"] == len(records) - len(good)
    assert outcomes["duplicate"] == len(good) - in_database["applied"]
    assert outcomes["retried"] == 0

    _, text = get(port, "/metrics")
    scraped = samples(text)
    assert total(scraped, "oncepipe_scrape_reads_up") == 1
    assert total(scraped, "oncepipe_consumer_lag_records", group=worker_pool.group) == 0
    stored = total(scraped, "oncepipe_consumer_stored_offset", group=worker_pool.group)
    assert stored == len(records)
    partitions = {r.partition for r in good}
    fresh = [k for k in scraped if k[0] == "oncepipe_consumer_freshness_seconds"]
    assert {int(dict(labels)["partition"]) for _, labels in fresh} == partitions
    assert all(scraped[k] >= 0 for k in fresh)
    dead_by_stage = {
        dict(labels)["stage"]: value
        for (name, labels), value in scraped.items()
        if name == "oncepipe_consumer_dead_letters_total"
    }
    assert dead_by_stage == {"decode": 4, "validate": 2, "handle": 2}
    promtool("check", "metrics", stdin=text)

    # One DEBUG line per record, with its outcome, matching the counters.
    lines = worker.lines()
    per_record = Counter(
        line["event"] for line in lines if str(line.get("event", "")).startswith("record ")
    )
    assert per_record["record applied"] == outcomes["applied"]
    assert per_record["record duplicate"] == outcomes["duplicate"]
    assert per_record["record dead_lettered"] == outcomes["dead_lettered"]
    # The handler's own lines carry the coordinates of the event it was looking at.
    where = {(r.partition, r.offset): r.event_id for r in records}
    handler_lines = [line for line in lines if line.get("event") == "handler saw a click"]
    assert handler_lines
    for line in handler_lines:
        assert line["topic"] == worker_pool.topic
        assert line["consumer_group"] == worker_pool.group
        assert where[(line["partition"], line["offset"])] == line["event_id"]
    assert worker.terminate() == 0


def status(group: str, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [ONCEPIPE, "status", "--json", "--group", group, *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in {0, 1}, done.stderr
    return done.returncode, json.loads(done.stdout)


def lag(document: dict[str, Any]) -> int:
    return sum(p["lag"] for p in document["partitions"])


def test_status_shows_lag_reaching_zero_then_growing_while_the_worker_is_stopped(
    worker_pool: WorkerPool,
) -> None:
    settings = worker_pool.settings
    env = {
        "PATH": "/usr/bin:/bin",
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ONCEPIPE_DATABASE_URL": settings.database_url.get_secret_value(),
    }
    first = produce_records(
        settings, worker_pool.topic, [good_record(e) for e in make_clicks(200, seed=5)]
    )
    worker = worker_pool.start()
    url = settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(first)), 90, "the worker to catch up")
    code, caught = status(worker_pool.group, env)
    assert code == 0, caught
    assert lag(caught) == 0
    assert caught["groups"] == [{"group": worker_pool.group, "members": 1, "lag": 0}]
    assert {p["partition"] for p in caught["partitions"]} == {r.partition for r in first}
    assert all(p["owner"] for p in caught["partitions"])
    assert worker.terminate() == 0

    more = produce_records(
        settings, worker_pool.topic, [good_record(e) for e in make_clicks(60, seed=6)]
    )
    wait_until(
        lambda: status(worker_pool.group, env)[1]["groups"][0]["members"] == 0,
        60,
        "the broker to see the group empty",
    )
    code, behind = status(worker_pool.group, env)
    assert lag(behind) == len(more)
    # No live member at the broker and records waiting: red at once, whatever --stale-after.
    assert behind["groups"] == [{"group": worker_pool.group, "members": 0, "lag": len(more)}]
    assert code == 1
    stale = {p["partition"] for p in behind["partitions"] if p["stale"]}
    assert stale == {p["partition"] for p in behind["partitions"] if p["lag"]}
    assert stale == {r.partition for r in more}


def test_livez_fails_while_the_consume_loop_hangs_and_the_endpoint_still_answers(
    worker_pool: WorkerPool,
) -> None:
    port = free_metrics_port()
    worker_pool.extra_env.update(
        {
            "ONCEPIPE_METRICS_PORT": str(port),
            "ONCEPIPE_METRICS_LIVENESS_S": "5",
            "ONCEPIPE_CONSUMER_HANG_POINTS": "consumer.before_transaction",
        }
    )
    worker_pool.start()
    wait_until(lambda: answers(port, "/readyz", 200), 60, "the worker to be ready")
    wait_until(lambda: answers(port, "/livez", 200), 60, "/livez to pass for the running loop")
    produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in make_clicks(5, seed=8)]
    )
    wait_until(lambda: answers(port, "/livez", 503), 60, "/livez to fail for the hung loop")
    _, body = get(port, "/livez")
    assert "no progress" in body
    assert get(port, "/metrics")[0] == 200


def test_a_relay_scrape_shows_what_it_published_and_an_empty_backlog(
    settings: Settings,
    make_topic: Callable[..., str],
    relay_process: Callable[..., subprocess.Popen[bytes]],
) -> None:
    topic = make_topic("observe-relay", 2)
    events = [click_event(n) for n in range(30)]
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        for event in events:
            with conn.transaction():
                assert enqueue(conn, event, codec=CODEC, topic=topic)
    port = free_metrics_port()
    relay_process(ONCEPIPE_METRICS_PORT=str(port))

    def published() -> float:
        status, text = get(port, "/metrics")
        return total(samples(text), "oncepipe_relay_rows_published_total") if status == 200 else 0

    wait_until(lambda: published() >= len(events), 60, "the relay to publish every row")
    _, text = get(port, "/metrics")
    scraped = samples(text)
    assert total(scraped, "oncepipe_relay_rows_published_total") == len(events)
    assert total(scraped, "oncepipe_outbox_pending_rows") == 0
    assert total(scraped, "oncepipe_outbox_oldest_pending_age_seconds") == 0
    assert total(scraped, "oncepipe_relay_publish_duration_seconds_count") >= 1
    promtool("check", "metrics", stdin=text)
    wait_until(lambda: answers(port, "/readyz", 200), 30, "the relay to be ready")
    assert answers(port, "/livez", 200)
