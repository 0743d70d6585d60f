"""The whole path: HTTP posts with retries -> ingest -> outbox -> relay -> consumer counters."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from ingest import derive_event_id
from schemas import ClickEvent
from tests.fixtures.ingest import IngestServer, click
from tests.fixtures.workers import WorkerPool, assert_exact, caught_up, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_posted_clicks_with_retries_are_counted_exactly_once(
    ingest_server: Callable[..., IngestServer],
    relay_process: Callable[..., Any],
    worker_pool: WorkerPool,
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_TOPICS=json.dumps({"ClickEvent": worker_pool.topic}))
    rng = random.Random(24)
    events: list[ClickEvent] = []

    def body(n: int) -> dict[str, Any]:
        return click(user_id=f"user-{rng.randrange(20)}", item_id=f"item-{rng.randrange(30)}",
                     session_id=f"s-{n}")  # fmt: skip

    for n in range(150):  # single posts; a fifth of them retried with the same key
        one = body(n)
        for _ in range(2 if n % 5 == 0 else 1):
            assert server.post("/v1/events/ClickEvent", one, key=f"one-{n}").status_code == 202
        events.append(ClickEvent(event_id=derive_event_id("web", f"one-{n}", 0), **one))
    for b in range(15):  # batches of 10; every third one retried
        batch = [body(1000 + 10 * b + i) for i in range(10)]
        for _ in range(2 if b % 3 == 0 else 1):
            answer = server.post("/v1/events/ClickEvent/batch", {"events": batch}, key=f"b-{b}")
            assert answer.status_code == 202
        events += [
            ClickEvent(event_id=derive_event_id("web", f"b-{b}", i), **item)
            for i, item in enumerate(batch)
        ]

    relay_process()
    worker_pool.start()
    url = worker_pool.settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, len(events)), 120, "the worker to catch up")
    assert len(events) == 300
    assert_exact(url, worker_pool.group, events)
