"""``oncepipe offsets show|reset``: what a group resumes from, and moving it safely."""

from __future__ import annotations

import json
import os
import subprocess

import psycopg
import pytest

from consumers.offsets import overwrite
from tests.fixtures.workers import (
    ONCEPIPE,
    WorkerPool,
    make_clicks,
    produce_clicks,
    read_totals,
    wait_until,
)

pytestmark = pytest.mark.integration


def run_cli(pool: WorkerPool, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": pool.settings.kafka_bootstrap_servers,
        "ONCEPIPE_DATABASE_URL": pool.settings.database_url.get_secret_value(),
    }
    return subprocess.run(
        [ONCEPIPE, "offsets", *args], capture_output=True, text=True, env=env, check=False
    )


def store(pool: WorkerPool, offsets: dict[int, int]) -> None:
    with psycopg.connect(pool.settings.database_url.get_secret_value()) as conn:
        overwrite(conn.cursor(), pool.group, pool.topic, offsets)


def test_show_lists_the_stored_offsets_as_json(worker_pool: WorkerPool) -> None:
    store(worker_pool, {0: 7, 3: 2})
    result = run_cli(worker_pool, "show", "--group", worker_pool.group, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["partition"], r["next_offset"]) for r in rows] == [(0, 7), (3, 2)]
    assert {r["consumer_group"] for r in rows} == {worker_pool.group}


def test_reset_dry_run_shows_the_plan_and_changes_nothing(worker_pool: WorkerPool) -> None:
    produce_clicks(worker_pool.settings, worker_pool.topic, make_clicks(60, seed=1))
    store(worker_pool, {0: 1})
    result = run_cli(
        worker_pool, "reset", "--group", worker_pool.group, "--topic", worker_pool.topic,
        "--to", "latest", "--dry-run", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True
    assert len(plan["partitions"]) == 6
    assert sum(p["to"] for p in plan["partitions"]) == 60
    assert read_totals(worker_pool.settings.database_url.get_secret_value(), worker_pool.group)\
        .stored_offsets == {0: 1}  # fmt: skip


def test_reset_moves_every_partition_or_just_one(worker_pool: WorkerPool) -> None:
    produce_clicks(worker_pool.settings, worker_pool.topic, make_clicks(60, seed=2))
    args = ["reset", "--group", worker_pool.group, "--topic", worker_pool.topic]
    plan = json.loads(run_cli(worker_pool, *args, "--to", "latest", "--dry-run", "--json").stdout)
    latest = {p["partition"]: p["latest"] for p in plan["partitions"]}
    url = worker_pool.settings.database_url.get_secret_value()

    assert run_cli(worker_pool, *args, "--to", "latest", "--yes").returncode == 0
    assert read_totals(url, worker_pool.group).stored_offsets == latest
    assert run_cli(worker_pool, *args, "--to", "0", "--partition", "2", "--yes").returncode == 0
    assert read_totals(url, worker_pool.group).stored_offsets == {**latest, 2: 0}


def test_reset_without_yes_on_a_pipe_is_refused(worker_pool: WorkerPool) -> None:
    result = run_cli(worker_pool, "reset", "--group", worker_pool.group, "--topic",
                     worker_pool.topic, "--to", "earliest")  # fmt: skip
    assert result.returncode == 2
    assert "--yes" in result.stderr


def test_reset_refuses_while_the_group_has_live_members_unless_forced(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(100, seed=3)
    produce_clicks(worker_pool.settings, worker_pool.topic, events)
    worker = worker_pool.start()
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(lambda: read_totals(url, worker_pool.group).inbox == 100, 30, "the worker")
    args = ["reset", "--group", worker_pool.group, "--topic", worker_pool.topic, "--to", "0"]
    refused = run_cli(worker_pool, *args, "--yes")
    assert refused.returncode == 1
    assert "live member" in refused.stderr
    forced = run_cli(worker_pool, *args, "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    # The running worker replays from 0: every event is a duplicate now, nothing counts twice.
    produce_clicks(worker_pool.settings, worker_pool.topic, make_clicks(1, seed=4))
    wait_until(lambda: read_totals(url, worker_pool.group).inbox == 101, 30, "the replay")
    assert worker.terminate() == 0
    totals = read_totals(url, worker_pool.group)
    assert sum(totals.items.values()) == 101
    assert sum(totals.stored_offsets.values()) == 101


def test_show_check_flags_an_offset_beyond_the_log_end(worker_pool: WorkerPool) -> None:
    store(worker_pool, {0: 7, 3: 0})  # the topic is empty: 7 is beyond its end
    result = run_cli(worker_pool, "show", "--group", worker_pool.group, "--check", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["partition"]: r for r in json.loads(result.stdout)}
    assert rows[0]["in_range"] is False
    assert (rows[0]["log_start"], rows[0]["log_end"]) == (0, 0)
    assert "beyond the log end 0" in rows[0]["log"]
    assert rows[3]["in_range"] is True
    assert rows[3]["log"] == "ok"
