"""Rolling upgrade: the previous release's workers beside this one's, across a migration.

A database migrated by the previous release (``tests/operations/releases.py``); two of its
workers apply clicks; this release's ``oncepipe migrate`` expands the schema while they run;
two new workers join the same group (rebalances mix the versions); the old ones stop one at a
time. Exactly-once holds over every record, and nothing is dead-lettered.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.database import create_database, drop_database, with_database
from tests.fixtures.relay import worker_env
from tests.fixtures.services import Services
from tests.fixtures.workers import (
    ONCEPIPE,
    ClickStream,
    Worker,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
    with_duplicates,
)
from tests.operations.releases import previous_release

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def empty_database(admin_url: str) -> Iterator[str]:
    """A database with no migration applied; dropped afterwards."""
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


@dataclass
class MixedPool(WorkerPool):
    """Workers of one group started from either release's executable."""

    def start_release(self, executable: str, **extra: str) -> Worker:
        """A worker of ``executable``'s release (``oncepipe consume``)."""
        name = f"w{len(self.workers)}"
        env = {
            **extra,
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "ONCEPIPE_DATABASE_URL": self.settings.database_url.get_secret_value(),
            "ONCEPIPE_LOG_FORMAT": "json",
            "ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S": "0.3",
            "ONCEPIPE_CONSUMER_CLIENT_ID": name,
        }
        argv = [executable, "consume", "--group", self.group, "--topic", self.topic,
                "--handler", "clicks"]  # fmt: skip
        child = self.processes.start(name, argv, env=env, log=self.tmp_path / f"{name}.log")
        worker = Worker(child)
        self.workers.append(worker)
        return worker


def _migrate(executable: str, url: str, settings_env: dict[str, str]) -> str:
    result = subprocess.run(
        [executable, "migrate"], env={**settings_env, "ONCEPIPE_DATABASE_URL": url},
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return result.stdout


def _batches(worker: Worker) -> int:
    return sum(1 for line in worker.lines() if line.get("event") == "batch committed")


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_previous_release_workers_beside_new_ones_across_a_migration(
    services: Services,
    empty_database: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    from oncepipe.settings import Settings

    old = str(previous_release())
    settings = Settings(
        kafka_bootstrap_servers=services.bootstrap_servers,
        database_url=empty_database,
        log_format="console",
    )
    env = worker_env(settings)
    url = empty_database
    old_ids = _migrate(old, url, env).split()
    pool = MixedPool(settings, tmp_path, f"g-{uuid.uuid4().hex[:8]}", make_topic("upgrade", 6))
    records = with_duplicates(make_clicks(1200, seed=2907), 0.2, seed=2907)
    thirds = [records[:480], records[480:960], records[960:]]
    try:
        # The upgrade notes: the previous release's workers run no inbox maintenance meanwhile.
        quiet = {"ONCEPIPE_CONSUMER_INBOX_MAINTENANCE_INTERVAL_S": "0"}
        olds = [pool.start_release(old, **quiet), pool.start_release(old, **quiet)]
        wait_until(olds[1].logged("partitions assigned"), 60, "both old workers in the group")
        produce_clicks(settings, pool.topic, thirds[0])
        wait_until(caught_up(url, pool.group, 480), 90, "the old workers applied a third")
        before = {w.name: _batches(w) for w in olds}

        # Expand while the old workers apply a stream, then roll: new workers join beside them.
        stream = ClickStream(settings, pool.topic, thirds[1][:240], rate=40)
        stream.start()
        new_ids = _migrate(ONCEPIPE, url, env).split()
        stream.finish()
        news = [pool.start_release(ONCEPIPE), pool.start_release(ONCEPIPE)]
        for worker in news:
            wait_until(worker.logged("partitions assigned"), 60, f"{worker.name} in the group")
        stream = ClickStream(settings, pool.topic, thirds[1][240:], rate=40)
        stream.start()
        wait_until(
            lambda: all(_batches(w) > before.get(w.name, 0) for w in olds + news),
            90,
            "every old and new worker to commit batches after the migration",
        )
        stream.finish()
        wait_until(caught_up(url, pool.group, 960), 90, "old and new workers side by side")
        for worker in olds:  # one at a time, as a rolling deploy does
            assert worker.terminate() == 0
        produce_clicks(settings, pool.topic, thirds[2])
        wait_until(caught_up(url, pool.group, len(records)), 90, "the new workers alone")
        for worker in news:
            assert worker.terminate() == 0
    finally:
        pool.reap()

    assert new_ids, "this release adds no migration over the previous one: nothing crossed"
    assert not set(new_ids) & set(old_ids)
    assert_exact(url, pool.group, records)
    assert _count(url, "SELECT count(*) FROM oncepipe.outbox") == 0  # no dead letter queued
    assert _count(url, "SELECT count(*) FROM oncepipe.consumer_failures") == 0
