"""Shared steps of the disaster-recovery drills: an upstream pipeline on an archived cluster.

The upstream service's database is an ``ArchivedCluster`` (its own port, WAL archived): click
workers apply a topic into it and its outbox feeds a downstream topic through a relay. The
downstream group's database is the session's service (it is not restored): it shows that
events published again after a restore are absorbed by its inbox.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.paths import layout
from infra.postgres.recovery import ArchivedCluster, clusters_folder
from oncepipe.kafka import AdminClient, TopicPartition
from oncepipe.settings import Settings
from producers import RelaySettings, enqueue
from schemas import ClickEvent, Codec
from tests.fixtures.kafka import Record, read_topic
from tests.fixtures.relay import RelayThread, worker_env
from tests.fixtures.workers import (
    ONCEPIPE,
    Totals,
    WorkerPool,
    caught_up,
    expected_totals,
    read_totals,
    wait_until,
)

# Inside this checkout's test range (Kafka's port + 100..499), clear of the other fixtures.
PRIMARY_PORT_OFFSET = 450
STANDBY_PORT_OFFSET = 451
HELD = "stored offset out of range, partition held"


@pytest.fixture
def drill_root() -> Iterator[Path]:
    """A folder for the drill's clusters, their backups and WAL archive; removed afterwards."""
    root = clusters_folder() / f"drill-{uuid.uuid4().hex[:8]}"
    made: list[ArchivedCluster] = []
    try:
        yield root
    finally:
        for child in root.glob("*/data/postmaster.pid"):
            made.append(ArchivedCluster(root, child.parent.parent.name, 0, root / "archive"))
        for cluster in made:
            cluster.stop("immediate")
        subprocess.run(["rm", "-rf", str(root)], check=False)


def drill_port(offset: int) -> int:
    """A port of this checkout's test range."""
    return layout().kafka_port + offset


@dataclass
class Upstream:
    """Click workers, outbox and relay of the service whose database is restored."""

    kafka: str
    cluster: ArchivedCluster
    topic: str
    tmp_path: Path
    group: str = field(default_factory=lambda: f"up-{uuid.uuid4().hex[:8]}")
    pools: list[WorkerPool] = field(default_factory=list)
    relays: list[RelayThread] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The database URL of the current cluster."""
        return self.cluster.url

    @property
    def settings(self) -> Settings:
        """Settings pointing at the current cluster."""
        return Settings(
            kafka_bootstrap_servers=self.kafka, database_url=self.url, log_format="console"
        )

    def start_workers(self, count: int = 2, **consumer_env: str) -> WorkerPool:
        """``count`` click workers of the upstream group on the current cluster."""
        folder = self.tmp_path / f"up{len(self.pools)}"
        folder.mkdir()
        pool = WorkerPool(self.settings, folder, self.group, self.topic)
        for _ in range(count):
            pool.start(**consumer_env)
        self.pools.append(pool)
        return pool

    def stop_workers(self) -> None:
        """SIGTERM every worker (they finish their batch)."""
        for pool in self.pools:
            for worker in pool.workers:
                if worker.alive():
                    worker.terminate()

    def start_relay(self) -> RelayThread:
        """A relay on the current cluster (short lease: a restored lease expires fast)."""
        relay = RelayThread(self.settings, RelaySettings(poll_interval_s=0.2, lease_s=2.0))
        self.relays.append(relay)
        return relay

    def stop_relays(self) -> None:
        """Stop every relay still running."""
        while self.relays:
            self.relays.pop().stop()

    def enqueue(self, events: list[ClickEvent], topic: str) -> None:
        """Write derived events into the outbox, in one transaction."""
        codec = Codec.load()
        with psycopg.connect(self.url) as conn:
            for event in events:
                enqueue(conn, event, codec=codec, topic=topic)

    def wait_applied(self, records: int, timeout: float = 120) -> None:
        """Wait until the group's stored offsets cover ``records`` records."""
        wait_until(caught_up(self.url, self.group, records), timeout, f"{records} applied")

    def wait_published(self, timeout: float = 60) -> None:
        """Wait until the outbox has no unpublished row."""
        wait_until(lambda: self.unpublished() == 0, timeout, "the outbox drained")

    def unpublished(self) -> int:
        """Outbox rows not yet published."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL"
            ).fetchone()
        return int(row[0]) if row else 0

    def reap(self) -> None:
        """Stop relays, kill workers."""
        self.stop_relays()
        for pool in self.pools:
            pool.reap()


def events_of(records: list[Record], clicks: list[ClickEvent]) -> list[ClickEvent]:
    """The click events the records carry (by their ``event_id`` header)."""
    by_id = {str(event.event_id): event for event in clicks}
    return [by_id[record.headers["event_id"]] for record in records]


def assert_effects_match_offsets(
    url: str, group: str, log: list[Record], clicks: list[ClickEvent]
) -> tuple[Totals, list[Record]]:
    """The group's effects are exactly those of the records below its stored offsets."""
    totals = read_totals(url, group)
    below = [r for r in log if r.offset < totals.stored_offsets.get(r.partition, 0)]
    items, user_items = expected_totals(events_of(below, clicks))
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)
    assert (
        len(totals.raw_ids)
        == len(set(totals.raw_ids))
        == len({r.headers["event_id"] for r in below})
    )
    return totals, below


def assert_exact_over(url: str, group: str, events: list[ClickEvent]) -> None:
    """Counters, raw rows and inbox equal the distinct events' exactly."""
    totals = read_totals(url, group)
    items, user_items = expected_totals(events)
    distinct = {e.event_id for e in events}
    assert set(totals.raw_ids) == distinct
    assert len(totals.raw_ids) == len(distinct)
    assert totals.inbox == len(distinct)
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)


def delete_up_to_end(admin: AdminClient, topic: str, partition: int, end: int) -> None:
    """Retention, by hand: remove every record of one partition below ``end``."""
    for future in admin.delete_records([TopicPartition(topic, partition, end)]).values():
        future.result(timeout=30)


def reset_offsets(settings: Settings, group: str, topic: str, *extra: str) -> str:
    """``oncepipe offsets reset ... --yes --force``; its output."""
    result = subprocess.run(
        [ONCEPIPE, "offsets", "reset", "--group", group, "--topic", topic, *extra,
         "--yes", "--force"],
        env=worker_env(settings), capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout + result.stderr


def log_of(bootstrap: str, topic: str, expected: int) -> list[Record]:
    """Every record of ``topic`` (waits for ``expected``)."""
    return read_topic(bootstrap, topic, expected=expected, settle=0.5)


def held_lines(pool: WorkerPool) -> list[dict[str, Any]]:
    """The pool's 'partition held' log lines."""
    return [line for line in pool.lines() if line.get("event") == HELD]
