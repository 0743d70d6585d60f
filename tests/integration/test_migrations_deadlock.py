"""A migration that deadlocks with a running worker's transaction is applied again, not failed.

The deadlock is built step by step, each step waited on in ``pg_stat_activity``: a "worker"
transaction holds table A; the migration takes table B, then waits on an advisory lock the test
holds; the worker asks for B; the test lets the migration go on to ask for A. The migration
waits last, so its own deadlock check (the worker's is set far off) finds the cycle and
PostgreSQL rolls the migration back; ``apply_migrations`` applies it again and succeeds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from oncepipe.migrations import apply_migrations
from tests.fixtures.workers import wait_until

pytestmark = pytest.mark.integration

PROBE = """\
LOCK TABLE public.deadlock_b IN ACCESS EXCLUSIVE MODE;
SELECT pg_advisory_xact_lock(4242);
LOCK TABLE public.deadlock_a IN ACCESS EXCLUSIVE MODE;
"""


def _waiting(conn: psycopg.Connection, event: str, *, pid: int | None = None) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = %s AND (%s::int IS NULL OR pid = %s)",
        (event, pid, pid),
    ).fetchone()
    return row is not None and row[0] > 0


def test_a_migration_rolled_back_by_a_deadlock_with_a_worker_is_applied_again(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "9001_deadlock_probe.sql").write_text(PROBE)
    with psycopg.connect(database_url, autocommit=True) as setup:
        for table in ("deadlock_a", "deadlock_b"):
            setup.execute(f"CREATE TABLE public.{table} (id int)")
            setup.execute(f"GRANT ALL ON public.{table} TO oncepipe_owner")

    with (
        psycopg.connect(database_url, autocommit=True) as watch,
        psycopg.connect(database_url) as worker,
        psycopg.connect(database_url) as gate,
    ):
        worker.execute("SET deadlock_timeout = '10min'")  # the migration detects the cycle
        worker.execute("LOCK TABLE public.deadlock_a IN ACCESS SHARE MODE")
        gate.execute("SELECT pg_advisory_xact_lock(4242)")

        applied: list[str] = []
        migrating = threading.Thread(
            target=lambda: applied.extend(apply_migrations(database_url, tmp_path))
        )
        migrating.start()
        wait_until(lambda: _waiting(watch, "advisory"), 30, "the migration holding B")

        worker_pid = worker.info.backend_pid
        worker_waits = threading.Thread(
            target=lambda: worker.execute("LOCK TABLE public.deadlock_b IN ACCESS SHARE MODE")
        )
        worker_waits.start()
        wait_until(
            lambda: _waiting(watch, "relation", pid=worker_pid), 30, "the worker waiting for B"
        )
        gate.commit()  # the migration asks for A: the cycle closes
        worker_waits.join(60)
        assert not worker_waits.is_alive(), "the worker never got B"
        worker.commit()  # the worker's transaction was not the victim: it goes on
        migrating.join(60)
        assert not migrating.is_alive(), "the migration never finished"

    assert applied == ["9001_deadlock_probe"]
