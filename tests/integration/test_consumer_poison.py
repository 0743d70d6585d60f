"""Until dead-lettering lands, an undecodable record stops the worker; it is never skipped."""

from __future__ import annotations

import psycopg
import pytest

from oncepipe.kafka import create_producer
from schemas import Codec
from tests.fixtures.workers import WorkerPool, make_clicks, produce_clicks, read_totals

pytestmark = pytest.mark.integration


def test_an_undecodable_record_stops_the_worker_before_it_with_exit_1(
    worker_pool: WorkerPool,
) -> None:
    events = make_clicks(20, seed=61)
    key = Codec.load().encode(events[0]).key
    before = [e for e in events if Codec.load().encode(e).key == key]
    produce_clicks(worker_pool.settings, worker_pool.topic, before)
    producer = create_producer(worker_pool.settings)
    producer.produce(worker_pool.topic, value=b"not avro at all", key=key)
    assert producer.flush(30) == 0
    produce_clicks(worker_pool.settings, worker_pool.topic, before[:1])

    worker = worker_pool.start()
    assert worker.process.wait(60) == 1, worker.text()[-2000:]
    url = worker_pool.settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        partition, offset = conn.execute(
            "SELECT partition, next_offset FROM oncepipe.consumer_offsets"
            " WHERE consumer_group = %s AND next_offset > 0",
            (worker_pool.group,),
        ).fetchone() or (None, None)
    # Everything before the poison record was applied; its offset is where the group stays.
    assert offset == len(before)
    assert f"{worker_pool.topic}[{partition}]@{offset}" in worker.text()
    assert read_totals(url, worker_pool.group).inbox == len(before)
    # A restart stops at the same record again: it is never skipped.
    again = worker_pool.start()
    assert again.process.wait(60) == 1
    assert f"{worker_pool.topic}[{partition}]@{offset}" in again.text()
