"""Queue mode (``oncepipe consume --mode queue``): share-group workers, exactly-once effects.

Real broker (share groups on) and real PostgreSQL; the workers are ``oncepipe consume``
processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oncepipe.kafka import AdminClient, create_topics
from oncepipe.settings import Settings
from schemas import ClickEvent
from tests.fixtures.poison import dead_letters, good_record, poison_record, produce_records
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import (
    ONCEPIPE,
    WorkerPool,
    assert_effects_exact,
    make_clicks,
    produce_clicks,
    wait_until,
    with_duplicates,
)

LIMIT = 4
"""The delivery limit of the killer test: the least that spares a killer's neighbours."""


@pytest.fixture
def make_queue_pool(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> Iterator[Callable[[int], WorkerPool]]:
    """Queue-mode workers of a fresh share group on a fresh topic of ``partitions``."""
    pools: list[WorkerPool] = []

    def make(partitions: int) -> WorkerPool:
        topic = make_topic("clicks", partitions)
        pool = WorkerPool(settings, tmp_path, f"q-{uuid.uuid4().hex[:8]}", topic)
        pool.extra_env.update({"ONCEPIPE_CONSUMER_MODE": "queue", "ONCEPIPE_LOG_LEVEL": "INFO"})
        pools.append(pool)
        return pool

    try:
        yield make
    finally:
        for pool in pools:
            pool.reap()


@pytest.fixture
def queue_pool(make_queue_pool: Callable[[int], WorkerPool]) -> WorkerPool:
    """Queue-mode workers on a 2-partition topic."""
    return make_queue_pool(2)


@pytest.fixture
def shared_pool(make_queue_pool: Callable[[int], WorkerPool]) -> WorkerPool:
    """Queue-mode workers on a 1-partition topic: every member is assigned the partition.

    With no more members than partitions the group gives each partition to one member, and a
    stalled or dead member keeps it until its share session times out (45 s); with more
    members, the others take its records as soon as their locks expire.
    """
    return make_queue_pool(1)


def committed(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == "batch committed"]


def assert_exact_without_offsets(url: str, group: str, records: list[ClickEvent]) -> None:
    """Counters equal the distinct counts; one raw row and one inbox row each; no offsets."""
    totals = assert_effects_exact(url, group, records)
    assert totals.stored_offsets == {}  # the share partition's state is the cursor


def queue_status(pool: WorkerPool) -> dict[str, Any]:
    """``oncepipe status --json`` of the pool's group."""
    env = {
        "PATH": "/usr/bin:/bin",
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": pool.settings.kafka_bootstrap_servers,
        "ONCEPIPE_DATABASE_URL": pool.settings.database_url.get_secret_value(),
    }
    done = subprocess.run(
        [ONCEPIPE, "status", "--json", "--group", pool.group],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode in {0, 1}, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def inbox_count(url: str, group: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = %s", (group,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_six_workers_on_two_partitions_count_20000_events_with_duplicates_exactly(
    queue_pool: WorkerPool,
) -> None:
    events = make_clicks(20_000, seed=28)
    records = with_duplicates(events, 0.2, seed=28)
    workers = [queue_pool.start() for _ in range(6)]
    for worker in workers:
        wait_until(worker.logged("queue consumer started"), 60, f"{worker.name} to start")
    # A live stream (small record batches, each acquired whole) that outlasts the group's
    # assignment of its six members.
    produce_clicks(queue_pool.settings, queue_pool.topic, records, rate=2500)
    url = queue_pool.settings.database_url.get_secret_value()
    group = queue_pool.group

    def done() -> bool:
        lines = committed(queue_pool.lines())
        return sum(int(line["events"]) for line in lines) >= len(records)

    wait_until(done, 120, "every record to be committed")
    for worker in workers:
        assert worker.terminate() == 0, worker.text()[-3000:]
    assert_exact_without_offsets(url, group, records)
    for worker in workers:
        applied = sum(line["applied"] for line in committed(worker.lines()))
        assert applied > 0, f"{worker.name} applied nothing"
    lines = committed(queue_pool.lines())
    assert sum(line["applied"] for line in lines) == len(events)
    # `oncepipe status` shows what each member saw, from oncepipe.queue_members.
    members = queue_status(queue_pool)["queue_members"]
    assert len(members) == 6
    assert all(m["left"] and m["in_flight"] == 0 for m in members)
    assert all(m["acquired"] == m["acknowledged"] + m["released"] for m in members)
    assert sum(m["acknowledged"] for m in members) >= len(records)
    assert sum(line["duplicates"] for line in lines) == sum(line["events"] for line in lines) - len(
        events
    )


@pytest.fixture
def queue_dlq(shared_pool: WorkerPool, kafka_admin: AdminClient) -> Iterator[str]:
    """The shared pool's ``<topic>.dlq``, deleted afterwards."""
    name = f"{shared_pool.topic}.dlq"
    create_topics(kafka_admin, {name: 2})
    yield name
    for future in kafka_admin.delete_topics([name], operation_timeout=30).values():
        future.result(timeout=60)


def outbox_rows(url: str, topic: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM oncepipe.outbox WHERE topic = %s", (topic,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_poison_and_a_killer_record_end_as_dead_letters_and_neighbours_apply_once(
    shared_pool: WorkerPool, queue_dlq: str, relay_thread: Callable[..., RelayThread]
) -> None:
    events = make_clicks(120, seed=43)
    killer = events[60].model_copy(update={"item_id": "killer-1"})
    good = [e for n, e in enumerate(events) if n != 60]
    poison = [poison_record("bad_magic", events[10]), poison_record("invalid_field", events[90])]
    produce_records(
        shared_pool.settings,
        shared_pool.topic,
        [good_record(e) for e in good[:30]] + [poison[0]] + [good_record(e) for e in good[30:60]]
        + [good_record(killer)] + [good_record(e) for e in good[60:90]] + [poison[1]]
        + [good_record(e) for e in good[90:]],
    )  # fmt: skip
    relay_thread()
    url = shared_pool.settings.database_url.get_secret_value()
    shared_pool.extra_env.update(
        {"ONCEPIPE_QUEUE_DELIVERY_LIMIT": str(LIMIT), "ONCEPIPE_QUEUE_LOCK_DURATION_MS": "15000"}
    )
    handler = "tests.fixtures.crash_handlers:killer_clicks"
    workers = [shared_pool.start(handler=handler) for _ in range(2)]
    deaths = 0

    def settled() -> bool:
        nonlocal deaths
        for n, worker in enumerate(workers):
            if not worker.alive():
                assert worker.process.returncode == 1, worker.text()[-2000:]
                deaths += 1
                assert deaths < LIMIT, "the killer was not dead-lettered in time"
                workers[n] = shared_pool.start(handler=handler)
        return inbox_count(url, shared_pool.group) == len(good) and outbox_rows(url, queue_dlq) == 3

    wait_until(settled, 150, "the good events applied and three dead letters")
    for worker in workers:
        assert worker.terminate() == 0, worker.text()[-3000:]
    # One death in the killer's first batch, then one per delivery alone below the limit.
    assert deaths == LIMIT - 1
    assert_exact_without_offsets(url, shared_pool.group, good)
    letters = dead_letters(shared_pool.settings, queue_dlq, expected=3)
    assert sorted((d.stage or "", d.event_id) for d in letters) == [
        ("crash", str(killer.event_id)),
        ("decode", poison[0].event_id),
        ("validate", poison[1].event_id),
    ]


def test_a_worker_stalled_past_the_lock_loses_its_records_and_its_late_commit_is_absorbed(
    shared_pool: WorkerPool,
) -> None:
    events = make_clicks(300, seed=44)
    produce_clicks(shared_pool.settings, shared_pool.topic, events)
    url = shared_pool.settings.database_url.get_secret_value()
    shared_pool.extra_env["ONCEPIPE_QUEUE_LOCK_DURATION_MS"] = "15000"
    # SIGSTOP with its first batch acquired, before its transaction starts.
    stalled = shared_pool.start(stall_points="consumer.before_transaction")
    wait_until(stalled.stopped, 60, "the first worker to stall")
    other = shared_pool.start()
    # Its locks expire: the other worker gets every record, the stalled batch's redelivered.
    wait_until(lambda: inbox_count(url, shared_pool.group) == len(events), 90, "all applied")
    stalled.signal(signal.SIGCONT)
    wait_until(lambda: bool(committed(stalled.lines())), 60, "the late batch to commit")
    for worker in (stalled, other):
        assert worker.terminate() == 0, worker.text()[-3000:]
    late = committed(stalled.lines())
    assert late[0]["events"] > 0
    assert late[0]["applied"] == 0
    assert late[0]["duplicates"] == late[0]["events"]
    assert_exact_without_offsets(url, shared_pool.group, events)
    stopped = next(line for line in other.lines() if line.get("event") == "consumer stopped")
    assert stopped["redelivered"] >= late[0]["events"]
    assert sum(line["applied"] for line in committed(other.lines())) == len(events)


def test_a_bad_mode_and_a_deadline_past_the_lock_are_refused_with_one_line(
    queue_pool: WorkerPool,
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": queue_pool.settings.kafka_bootstrap_servers,
        "ONCEPIPE_DATABASE_URL": queue_pool.settings.database_url.get_secret_value(),
    }
    argv = [ONCEPIPE, "consume", "--group", queue_pool.group, "--topic", queue_pool.topic,
            "--handler", "clicks"]  # fmt: skip
    bad_mode = subprocess.run(
        [*argv, "--mode", "share"], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert bad_mode.returncode == 2
    assert bad_mode.stderr.strip().count("\n") == 0, bad_mode.stderr
    assert "invalid consumer mode 'share'" in bad_mode.stderr
    late = subprocess.run(
        [*argv, "--mode", "queue"], env={**env, "ONCEPIPE_QUEUE_BATCH_DEADLINE_S": "45"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert late.returncode == 2
    refused = [line for line in late.stderr.splitlines() if "BATCH_DEADLINE_S" in line]
    assert refused, late.stderr
    assert "is not below the group's record lock duration (30 s)" in refused[0]


def test_a_worker_killed_holding_a_whole_producer_batch_leaves_no_innocent_at_the_limit(
    shared_pool: WorkerPool,
) -> None:
    """A poll returns whole producer batches (``max.poll.records`` is a hint): the worker
    killed before its first transaction held all 1,000 records, which come back together at
    delivery 2. One transaction each outlasts a short batch deadline, so the rest would be
    released, poll after poll, until innocent records reach the limit as ``crash`` dead
    letters; in chunks they all apply within the first redelivery."""
    events = make_clicks(1000, seed=45)
    produce_clicks(shared_pool.settings, shared_pool.topic, events)
    url = shared_pool.settings.database_url.get_secret_value()
    shared_pool.extra_env.update(
        {
            "ONCEPIPE_QUEUE_DELIVERY_LIMIT": "6",
            "ONCEPIPE_QUEUE_LOCK_DURATION_MS": "15000",
            "ONCEPIPE_QUEUE_BATCH_DEADLINE_S": "1",
            "ONCEPIPE_CONSUMER_BATCH_SIZE": "50",
        }
    )
    first = shared_pool.start(crash_points="consumer.before_transaction")
    wait_until(lambda: not first.alive(), 60, "the first worker to die holding its poll")
    other = shared_pool.start()
    wait_until(lambda: inbox_count(url, shared_pool.group) == len(events), 120, "all applied")
    assert other.terminate() == 0, other.text()[-3000:]
    assert_exact_without_offsets(url, shared_pool.group, events)
    lines = other.lines()
    assert not [line for line in lines if "last delivery" in str(line.get("event"))]
    assert sum(line["applied"] for line in committed(lines)) == len(events)
