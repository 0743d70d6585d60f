"""A partition without a leader stalls only its own rows; the relay keeps per-key order for them.

Fault: the only replica of one partition dies (a three-node cluster, the partition placed on
node 3, node 3 killed). Invariants: every other partition's rows, dead letters included, are
published while it is down (the relay does not wait out delivery timeouts pass after pass);
none of the stuck partition's rows is marked published while it is down; once the node is back
they are all published, each key's events in the order they were enqueued (invariant 5).

(Kafka 4 caps min.insync.replicas at the replica count, so a single broker cannot refuse
acks=all; a leaderless partition needs a second node.)
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import psycopg
import pytest
from confluent_kafka.cimpl import NewTopic

from infra import Kafka
from oncepipe.kafka import AdminClient
from oncepipe.settings import Settings
from producers.outbox import enqueue
from producers.partitioner import key_partition
from producers.settings import RelaySettings
from schemas import Codec, dlq_topic_for
from tests.faults.leaders import leader_of
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import RelayThread
from tests.fixtures.workers import wait_until
from tests.integration.test_outbox_relay import click

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

CODEC = Codec.load()
STUCK_NODE = 3


@pytest.fixture
def cluster(three_node_cluster: Kafka) -> Kafka:
    """The session's three-node cluster (tests/fixtures/cluster.py)."""
    return three_node_cluster


def create_placed(admin: AdminClient, name: str, nodes: list[int]) -> str:
    """A topic with one single-replica partition on each of ``nodes``, in that order."""
    topic = NewTopic(name, len(nodes), replica_assignment=[[node] for node in nodes])
    for future in admin.create_topics([topic], operation_timeout=30).values():
        future.result(timeout=60)
    return name


def keys_on(partition: int, partitions: int, count: int, prefix: str) -> list[str]:
    """``count`` user ids whose key lands on ``partition``."""
    found = (f"{prefix}-{n}" for n in range(10_000))
    return [k for k in found if key_partition(k.encode(), partitions) == partition][:count]


def unpublished(url: str) -> dict[str, int]:
    """Unpublished outbox rows per topic."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, count(*) FROM oncepipe.outbox WHERE published_at IS NULL GROUP BY 1"
        ).fetchall()
    return {str(topic): int(n) for topic, n in rows}


def test_rows_of_other_partitions_flow_while_one_partition_has_no_leader_and_order_holds(
    cluster: Kafka, settings: Settings
) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    on_cluster = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap_servers})
    suffix = uuid.uuid4().hex[:8]
    stuck = create_placed(admin, f"events.stuck{suffix}", [1, 2, STUCK_NODE])
    other = create_placed(admin, f"events.other{suffix}", [1, 2])
    dlq = create_placed(admin, dlq_topic_for(other), [1])
    stuck_keys = keys_on(2, 3, 2, "stuck")
    free_keys = keys_on(0, 3, 1, "free") + keys_on(1, 3, 1, "free")

    cluster.kill(node_id=STUCK_NODE)
    wait_until(lambda: leader_of(admin, stuck, 2) == -1, 60, "partition 2 to lose its leader")

    # The stuck partition's rows first: fetched in id order, they head every batch.
    url = settings.database_url.get_secret_value()
    plan = [(stuck, stuck_keys[n % 2]) for n in range(60)]
    plan += [(stuck, free_keys[n % 2]) for n in range(20)]
    plan += [(other, f"user-{n}") for n in range(20)]
    plan += [(dlq, f"user-{n}") for n in range(10)]
    enqueued: dict[str, list[str]] = defaultdict(list)
    with psycopg.connect(url) as conn:
        for n, (topic, user) in enumerate(plan):
            event = click(user, n)
            with conn.transaction():
                enqueue(conn, event, codec=CODEC, topic=topic)
            enqueued[user].append(str(event.event_id))

    relay = RelayThread(
        on_cluster,
        RelaySettings(
            batch_size=25,
            poll_interval_s=0.2,
            pass_timeout_s=3,
            retry_backoff_s=0.5,
            retry_backoff_max_s=2,
        ),
    )
    try:
        wait_until(
            lambda: unpublished(url) == {stuck: 60},
            90,
            "every row but the leaderless partition's to be published",
        )
        assert len(read_topic(on_cluster.kafka_bootstrap_servers, other, expected=20)) >= 20
        assert len(read_topic(on_cluster.kafka_bootstrap_servers, dlq, expected=10)) >= 10

        # More rows of a stuck key while it is held: they queue behind the held ones.
        with psycopg.connect(url) as conn:
            for n in range(10):
                event = click(stuck_keys[0], 1000 + n)
                with conn.transaction():
                    enqueue(conn, event, codec=CODEC, topic=stuck)
                enqueued[stuck_keys[0]].append(str(event.event_id))

        cluster.start(node_id=STUCK_NODE, timeout=180)
        wait_until(lambda: not unpublished(url), 120, "the recovered partition's rows")
    finally:
        relay.stop()

    records = read_topic(on_cluster.kafka_bootstrap_servers, stuck, expected=100)
    first_seen: dict[str, list[str]] = defaultdict(list)
    for record in records:  # sorted by (partition, offset)
        user, event_id = record.key.decode() if record.key else "", record.headers["event_id"]
        if event_id not in first_seen[user]:  # a copy of a purged in-flight send
            first_seen[user].append(event_id)
    for user in stuck_keys + free_keys:
        assert first_seen[user] == enqueued[user], user
