"""The simulator's http mode through the lossy proxy: keyed retries add no event; keyless do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from demo.simulator import SimulationPlan, Simulator
from oncepipe.settings import Settings
from schemas import Codec
from tests.fixtures.ingest import IngestServer

pytestmark = pytest.mark.integration


def _run(settings: Settings, server: IngestServer, *, naive: bool) -> tuple[int, int, int]:
    plan = SimulationPlan(mode="http", count=300, url=server.url, api_key=server.keys["web"],
                          drop_rate=0.2, naive=naive, concurrency=8, seed=11)  # fmt: skip
    report = Simulator(settings, Codec.load(), plan).run()
    assert report.distinct_events == 300
    return report.http_lost_answers, report.http_requests, len(server.outbox())


def test_lost_answers_cost_retries_not_events(
    ingest_server: Callable[..., IngestServer], settings: Settings, tmp_path: Path
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_NAIVE_ENDPOINT="true")
    lost, requests, rows = _run(settings, server, naive=False)
    assert lost > 0
    assert requests == 300 + lost  # every lost answer was retried once more
    assert rows == 300  # ... and became no second event
    assert server.records() == 300


def test_a_keyless_endpoint_turns_lost_answers_into_extra_events(
    ingest_server: Callable[..., IngestServer], settings: Settings
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_NAIVE_ENDPOINT="true")
    lost, _requests, rows = _run(settings, server, naive=True)
    assert lost > 0
    assert rows == 300 + lost
    assert server.records() == 0


def test_the_naive_endpoint_is_off_unless_asked(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    answer = server.post("/naive/v1/events/ClickEvent", {}, key="k")
    assert answer.status_code == 404
