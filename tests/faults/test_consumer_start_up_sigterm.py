"""A worker SIGTERMed at any moment of its start-up exits 0 having held nothing.

The moments run from right after the spawn through the heavy imports, the connection to
PostgreSQL, the subscription and the first assignment. The worker is spawned with SIGTERM
blocked (``sigterm_blocked``): a SIGTERM sent before the interpreter runs the program's first line
then waits for the worker to unblock it, instead of meeting the kernel's default action, which
no program can catch before it runs.
"""

from __future__ import annotations

import signal
import subprocess
import time

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from tests.fixtures.relay import ONCEPIPE, worker_env
from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    sigterm_blocked,
    wait_until,
)

pytestmark = [pytest.mark.faults]

# Seconds after the spawn: the interpreter's start, the imports, connecting, subscribing.
MOMENTS_S = [0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
# Log lines of the later start-up steps, each a moment too.
STEPS = ["consumer started", "partitions assigned"]


def _group_members(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    return len(future.result().members)


def _sessions(database_url: str, group: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"%{group}%",),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_worker_sigtermed_at_any_moment_of_its_start_up_exits_0_holding_nothing(
    worker_pool: WorkerPool,
) -> None:
    records = make_clicks(300, seed=61)
    produce_clicks(worker_pool.settings, worker_pool.topic, records)
    url = worker_pool.settings.database_url.get_secret_value()
    for delay in MOMENTS_S:
        with sigterm_blocked():
            worker = worker_pool.start(batch_size="20")
        time.sleep(delay)  # the moment under test, not a wait for an event
        worker.signal(signal.SIGTERM)
        assert _exit_code(worker.process) == 0, f"+{delay}s: {worker.text()[-2000:]}"
    for step in STEPS:
        with sigterm_blocked():
            worker = worker_pool.start(batch_size="20")
        wait_until(worker.logged(step), 30, step)
        worker.signal(signal.SIGTERM)
        assert _exit_code(worker.process) == 0, f"{step}: {worker.text()[-2000:]}"

    # Held nothing: no member left in the group, no session left in PostgreSQL...
    assert _group_members(worker_pool.settings.kafka_bootstrap_servers, worker_pool.group) == 0
    wait_until(lambda: _sessions(url, worker_pool.group) == 0, 30, "no session of the group")
    # ...and no half-applied batch: a last member applies the rest exactly once.
    survivor = worker_pool.start(batch_size="100")
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the last member to catch up")
    assert survivor.terminate() == 0, survivor.text()[-2000:]
    assert_exact(url, worker_pool.group, records)


def _exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """The exit code, or None when SIGTERM did not end the process within 30 s (a SIGTERM
    left blocked, or a stop that hangs)."""
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        return None


def test_a_relay_sigtermed_during_its_start_up_exits_0(worker_pool: WorkerPool) -> None:
    env = worker_env(worker_pool.settings, ONCEPIPE_RELAY_POLL_INTERVAL_S="0.2")
    for delay in (0.0, 0.05, 0.3):
        with sigterm_blocked():
            relay = subprocess.Popen(
                [ONCEPIPE, "relay"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        try:
            time.sleep(delay)  # the moment under test
            relay.send_signal(signal.SIGTERM)
            assert _exit_code(relay) == 0, f"+{delay}s"
        finally:
            if relay.poll() is None:
                relay.kill()
                relay.wait(10)
