"""A handler's transient failure is retried, never counted, never fatal (DESIGN invariant 7).

The handler wraps a dropped connection in its own exception, or its own producer meets a
broker error: the worker rolls back, backs off and retries; every event applies once.
"""

from __future__ import annotations

import pytest

from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.parametrize(
    ("handler", "error_class"),
    [
        ("wrapped_outage_clicks", "PricingLookupError"),
        ("broker_hiccup_clicks", "KafkaException"),
    ],
)
def test_a_transient_failure_inside_the_handler_is_retried_not_counted(
    worker_pool: WorkerPool, handler: str, error_class: str
) -> None:
    url = worker_pool.settings.database_url.get_secret_value()
    clicks = make_clicks(60, seed=91)
    worker = worker_pool.start(handler=f"tests.fixtures.transient_handlers:{handler}")
    produce_clicks(worker_pool.settings, worker_pool.topic, clicks)

    wait_until(
        lambda: caught_up(url, worker_pool.group, len(clicks))() or not worker.alive(),
        120,
        "every click applied",
    )
    assert worker.alive(), worker.text()[-3000:]
    assert_exact(url, worker_pool.group, clicks)
    retried = [
        line
        for line in worker.lines()
        if line.get("event") == "batch failed, will retry"
        and line.get("error_class") == error_class
    ]
    assert retried
    assert not worker.logged("handler failed, isolating")()  # never treated as the record's fault
    assert not worker.logged("dead letter")()
    assert worker.terminate() == 0
