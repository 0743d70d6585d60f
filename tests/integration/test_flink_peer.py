"""The Flink peer's smoke test: 200 click events and 40 duplicate records through the job.

The job (``bench/jvm/flink-clicks``, built by Maven on first use) reads the topic, drops the
duplicates in keyed state and writes through the JDBC sink's XA transactions into the
benchmark's own PostgreSQL (``max_prepared_transactions`` > 0); once the last checkpoint
committed, its rows and both counters are exactly those of each event applied once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.consumer_clicks import clicks, produce
from bench.flink_run import BenchPostgres, FlinkJob, applied_rows, effects, expected
from oncepipe.kafka import create_admin, create_topics
from oncepipe.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench_url() -> Iterator[str]:
    """The benchmark's PostgreSQL (prepared transactions on), stopped after the module."""
    postgres = BenchPostgres()
    url = postgres.start()
    yield url
    postgres.stop()


def test_the_flink_job_writes_each_event_once_through_duplicates(
    settings: Settings, bench_url: str, tmp_path: Path
) -> None:
    records = clicks(200, 0.2, seed=7)
    assert len(records) == 240
    topic = f"flink.smoke.{uuid.uuid4().hex[:8]}"
    create_topics(create_admin(settings), {topic: 3})
    produce(settings, topic, records)
    group = f"flink-smoke-{uuid.uuid4().hex[:8]}"
    job = FlinkJob(
        url=bench_url, bootstrap=settings.kafka_bootstrap_servers, topic=topic, group=group,
        workdir=tmp_path, checkpoint_ms=500,
    )  # fmt: skip
    job.start()
    try:
        # A guard, not a measure: the run takes about 10 s; a loaded machine may take much longer.
        deadline = time.monotonic() + 150
        while applied_rows(bench_url, group, "flink_") < 200:
            assert job.alive(), f"the Flink job ended early:\n{job.log_tail()}"
            assert time.monotonic() < deadline, (
                f"200 rows not committed in 150 s:\n{job.log_tail()}"
            )
            time.sleep(0.2)
    finally:
        job.stop()
    assert effects(bench_url, group, "flink_") == expected(records)
