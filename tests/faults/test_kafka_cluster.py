"""Three-broker mode: killing partition leaders (chased twice) loses no acknowledged record."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from infra import Kafka
from oncepipe.kafka import AdminClient, create_producer, create_topics
from oncepipe.settings import Settings
from tests.faults.leaders import await_in_sync, leader_of
from tests.fixtures.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def cluster(three_node_cluster: Kafka) -> Kafka:
    """The session's three-node cluster (tests/fixtures/cluster.py)."""
    return three_node_cluster


def test_chasing_the_leader_loses_no_acknowledged_record(cluster: Kafka) -> None:
    settings = Settings(kafka_bootstrap_servers=cluster.bootstrap_servers)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    topic = f"chase.{uuid.uuid4().hex[:8]}"
    create_topics(admin, {topic: 3}, replication_factor=3, config={"min.insync.replicas": "2"})
    assert await_in_sync(admin, topic, 3), f"{topic} never had 3 in-sync replicas"

    acked: list[str] = []
    failed: list[str] = []
    done = threading.Event()

    def produce() -> None:
        producer = create_producer(settings, {"linger.ms": 5, "delivery.timeout.ms": 60000})
        n = 0
        while not done.is_set():
            value = f"v-{n}"

            def report(err: object, _msg: object, value: str = value) -> None:
                (failed if err else acked).append(value)

            producer.produce(topic, key=str(n % 17), value=value.encode(), on_delivery=report)
            producer.poll(0)
            n += 1
            time.sleep(0.002)
        producer.flush(90)

    writer = threading.Thread(target=produce)
    writer.start()
    killed = []
    try:
        for _ in range(2):  # chase the leader of partition 0 twice
            time.sleep(3)
            leader = leader_of(admin, topic, 0)
            cluster.kill(node_id=leader)
            killed.append(leader)
            time.sleep(3)
            cluster.start(node_id=leader, timeout=120)
            assert await_in_sync(admin, topic, 3), f"{topic} not back to 3 in-sync replicas"
    finally:
        done.set()
        writer.join(120)

    assert len(killed) == 2
    assert len(acked) > 500
    records = read_topic(cluster.bootstrap_servers, topic, expected=len(acked), timeout=90)
    on_topic = {r.value.decode() for r in records}
    assert set(acked) <= on_topic  # no acknowledged record lost
    assert len(records) == len(on_topic)  # and the idempotent producer wrote none twice
