"""/readyz follows PostgreSQL: unready while it is stopped, ready again after, /livez alive.

The worker's loop waits for the database with backoff (progress by design), so /livez stays
answered 200 while /readyz says the database is unreachable; both come from the endpoint's
own thread.
"""

from __future__ import annotations

import pytest

from tests.fixtures.observe import answers, free_metrics_port, get
from tests.fixtures.poison import good_record, produce_records
from tests.fixtures.services import Services
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = [pytest.mark.faults]


def test_readyz_is_unready_while_postgresql_is_stopped_and_ready_after(
    services: Services, worker_pool: WorkerPool
) -> None:
    _kafka, postgres = services.require_native()
    port = free_metrics_port()
    worker_pool.extra_env["ONCEPIPE_METRICS_PORT"] = str(port)
    worker = worker_pool.start()
    wait_until(lambda: answers(port, "/readyz", 200), 60, "the worker to be ready")
    try:
        postgres.stop()
        wait_until(lambda: answers(port, "/readyz", 503), 60, "/readyz to fail")
        assert "PostgreSQL unreachable" in get(port, "/readyz")[1]
        assert answers(port, "/livez", 200)  # waiting for the database is not a stall
    finally:
        postgres.start()
    wait_until(lambda: answers(port, "/readyz", 200), 90, "/readyz to recover")
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in make_clicks(20, seed=9)]
    )
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(records)), 90, "the worker to apply")
    assert worker.terminate() == 0
