"""Database fault: a fail-over lands the worker on a read-only node, then fails back.

A read-only session (SQLSTATE 25006) is transient: the worker rolls back, backs off, opens new
sessions and retries, and applies every event exactly once once writes work again (invariants
2, 3 and 7).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _read_only(admin_url: str, dbname: str, on: bool) -> None:
    """Make new sessions of ``dbname`` read-only (or writable again); existing ones keep theirs."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = {"on" if on else "off"}'
        )


def _terminate_workers(admin_url: str, dbname: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name LIKE 'oncepipe-consumer%%'",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_read_only_episode_is_waited_out_and_every_event_applies_once(
    worker_pool: WorkerPool, admin_url: str
) -> None:
    settings = worker_pool.settings
    url = settings.database_url.get_secret_value()
    dbname = str(conninfo_to_dict(url)["dbname"])
    before, during = make_clicks(120, seed=71), make_clicks(240, seed=72)[120:]
    worker = worker_pool.start()
    produce_clicks(settings, worker_pool.topic, before)
    wait_until(caught_up(url, worker_pool.group, len(before)), 90, "the first clicks applied")

    _read_only(admin_url, dbname, on=True)
    try:
        assert _terminate_workers(admin_url, dbname) >= 1
        produce_clicks(settings, worker_pool.topic, during)

        def refused_read_only() -> bool:
            # The first write of a batch is its attempt record (crash-loop detection), else
            # the batch transaction itself: either is refused with SQLSTATE 25006.
            return any(
                (
                    line.get("event") == "batch failed, will retry"
                    and line.get("error_class") == "ReadOnlySqlTransaction"
                )
                or (
                    line.get("event") == "attempt record failed, will retry"
                    and "(25006)" in str(line.get("reason"))
                )
                for line in worker.lines()
            )

        wait_until(
            lambda: refused_read_only() or not worker.alive(),
            90,
            "a batch refused by the read-only database",
        )
        assert worker.alive(), worker.text()[-3000:]
    finally:
        # Only new sessions see this: the worker must open them itself.
        _read_only(admin_url, dbname, on=False)

    wait_until(caught_up(url, worker_pool.group, 240), 120, "every click applied after fail-back")
    assert worker.alive(), worker.text()[-3000:]
    assert_exact(url, worker_pool.group, before + during)
    assert worker.terminate() == 0
