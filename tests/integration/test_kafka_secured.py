"""The pipeline on the secured broker (SASL_SSL, SCRAM-SHA-512, ACLs), one principal per component.

Every component runs as its own principal under the least-privilege ACL set of
``oncepipe.kafka.pipeline_acls``: ``admin`` creates the topics, ``producer`` writes the clicks,
two ``consumer`` workers apply them, ``relay`` publishes the dead letters the consumers wrote
to the outbox, ``replay`` sends the fixed one back. Faults in secured mode are process kills
(SIGKILL of a consumer worker and of the relay, then a restarted relay); the network-fault
proxies cannot see inside TLS, so no protocol-aware fault runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.workers import Child, Supervisor
from oncepipe.kafka import (
    OFFSET_BEGINNING,
    AdminClient,
    KafkaError,
    KafkaException,
    TopicPartition,
    create_consumer,
    create_producer,
    create_topics,
)
from schemas import ClickEvent
from tests.fixtures.handlers import CATALOG_TABLE
from tests.fixtures.poison import good_record, produce_records
from tests.fixtures.relay import ONCEPIPE, pending_rows
from tests.fixtures.secured import SecuredKafka
from tests.fixtures.workers import caught_up, expected_totals, make_clicks, read_totals, wait_until

pytestmark = pytest.mark.integration

AUTHORIZATION_ERRORS = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


@dataclass
class Deployment:
    """One topic, its dead-letter topic and consumer group, with the pipeline's ACLs granted."""

    secured: SecuredKafka
    database_url: str
    logs: Path
    topic: str = field(default_factory=lambda: f"secured.{uuid.uuid4().hex[:10]}")
    group: str = field(default_factory=lambda: f"sg-{uuid.uuid4().hex[:8]}")
    processes: Supervisor = field(default_factory=Supervisor)

    @property
    def dlq(self) -> str:
        """The dead-letter topic."""
        return f"{self.topic}.dlq"

    def env(self, principal: str) -> dict[str, str]:
        """A component's environment: the test database and ``principal``'s Kafka settings."""
        return {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": self.database_url,
            "ONCEPIPE_LOG_FORMAT": "json",
            "ONCEPIPE_RELAY_POLL_INTERVAL_S": "0.2",
            "ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S": "0.3",
            "ONCEPIPE_CONSUMER_RETRY_MAX_S": "2",
            **self.secured.env(principal),
        }

    def oncepipe(self, principal: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one ``oncepipe`` command as ``principal``."""
        return subprocess.run(
            [ONCEPIPE, *args],
            env=self.env(principal),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )

    def start(self, name: str, principal: str, *args: str) -> Child:
        """Start a long-running ``oncepipe`` command as ``principal``, logging to a file."""
        return self.processes.start(
            name, [ONCEPIPE, *args], env=self.env(principal), log=self.logs / f"{name}.log"
        )


@pytest.fixture
def deployment(
    secured_kafka: SecuredKafka, database_url: str, tmp_path: Path
) -> Iterator[Deployment]:
    """A fresh deployment on the secured broker; its processes are killed afterwards."""
    deployed = Deployment(secured_kafka, database_url, tmp_path)
    secured_kafka.grant([deployed.topic], deployed.group)
    try:
        yield deployed
    finally:
        deployed.processes.kill_all()


def assert_counted_once(url: str, group: str, applied: list[ClickEvent], records: int) -> None:
    """The ``applied`` events counted exactly once; the stored offsets past ``records``."""
    totals = read_totals(url, group)
    items, user_items = expected_totals(applied)
    assert sorted(totals.raw_ids) == sorted({e.event_id for e in applied})
    assert totals.inbox == len({e.event_id for e in applied})
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)
    assert sum(totals.stored_offsets.values()) == records


def dead_letter_count(secured: SecuredKafka, dlq: str) -> int:
    """Records on the dead-letter topic."""
    return sum(secured.end_offsets(dlq).values())


def one_line_refusal(result: subprocess.CompletedProcess[str], says: str) -> None:
    """The command was refused with one line that ``says`` what, and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr, result.stderr


def test_the_pipeline_applies_each_click_once_with_every_component_on_its_own_principal(
    deployment: Deployment, secured_kafka: SecuredKafka, database_url: str
) -> None:
    d = deployment
    created = d.oncepipe("admin", "topics", "create", "--topic", d.topic, "--partitions", "3")
    assert created.returncode == 0, created.stderr
    unrelated = f"unrelated.{uuid.uuid4().hex[:10]}"
    create_topics(AdminClient(secured_kafka.kafka.super_admin_config()), {unrelated: 1})

    events = make_clicks(300, seed=71)
    with psycopg.connect(database_url) as conn:
        conn.execute(CATALOG_TABLE)
        conn.execute(
            "INSERT INTO public.test_catalog SELECT unnest(%s::text[])",
            (sorted({e.item_id for e in events}),),
        )
    # Two clicks on an item the catalog does not list yet: one dead letter in each half.
    refused = [events[n].model_copy(update={"item_id": "new-item"}) for n in (100, 250)]
    clicks = [*events[:100], refused[0], *events[101:250], refused[1], *events[251:]]
    producer = secured_kafka.settings("producer", database_url)
    relay_settings = secured_kafka.settings("relay", database_url)

    relay = d.start("relay", "relay", "relay")
    handler = "tests.fixtures.handlers:catalog_clicks"
    consume = ("consume", "--group", d.group, "--topic", d.topic, "--handler", handler)
    workers = [d.start(f"consumer-{i}", "consumer", *consume) for i in range(2)]
    # The first half, and 30 of its records sent again (a producer's retry): the inbox absorbs.
    first = [good_record(e) for e in clicks[:150] + clicks[:30]]
    records = len(produce_records(producer, d.topic, first))
    wait_until(caught_up(database_url, d.group, records), 120, "the first half applied")
    wait_until(lambda: dead_letter_count(secured_kafka, d.dlq) == 1, 60, "the first dead letter")
    wait_until(lambda: pending_rows(relay_settings) == 0, 60, "the relay to mark it published")

    # Faults: SIGKILL one consumer and the relay; the other worker applies the second half, a
    # new relay publishes its dead letter (written to the outbox by the consumer).
    workers[1].kill()
    relay.kill()
    records += len(produce_records(producer, d.topic, [good_record(e) for e in clicks[150:]]))
    d.start("relay-2", "relay", "relay")
    wait_until(caught_up(database_url, d.group, records), 120, "the second half applied")
    wait_until(lambda: dead_letter_count(secured_kafka, d.dlq) == 2, 60, "the second dead letter")
    assert_counted_once(database_url, d.group, [e for e in clicks if e not in refused], records)

    listed = d.oncepipe("replay", "dlq", "list", "--topic", d.dlq, "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)["dead_letters"]
    assert sorted(letter["event_id"] for letter in letters) == sorted(
        str(e.event_id) for e in refused
    )

    # The replay principal may not write anywhere but the source topics (nor see others): the
    # replay is refused before anything is sent.
    wrong = d.oncepipe("replay", "dlq", "replay", "--topic", d.dlq, "--to", unrelated, "--yes")
    one_line_refusal(wrong, f"destination topic(s) {unrelated}")
    assert secured_kafka.end_offsets(unrelated) == {0: 0}

    # The fix (the item exists now), then the replay: each click is applied, once.
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO public.test_catalog VALUES ('new-item')")
    replayed = d.oncepipe("replay", "dlq", "replay", "--topic", d.dlq, "--yes", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["counts"] == {"sent": 2}
    wait_until(caught_up(database_url, d.group, records + 2), 60, "the replays applied")
    assert_counted_once(database_url, d.group, clicks, records + 2)
    assert workers[0].alive()


def _refusal(poll: Any, errors: list[KafkaError], wanted: set[int]) -> KafkaError:
    """Poll until the client reports an error in ``wanted``: a record's, its error callback's,
    or one raised by poll itself (a fatal error)."""
    found: list[KafkaError] = []

    def seen() -> bool:
        try:
            result = poll()
        except KafkaException as exc:
            found.append(exc.args[0])
            result = None
        # A producer's poll returns a count, a consumer's a record (or None).
        if result is not None and not isinstance(result, int) and result.error() is not None:
            found.append(result.error())
        return any(error.code() in wanted for error in found + errors)

    wait_until(seen, 60, f"the broker's refusal ({sorted(wanted)})")
    return next(error for error in found + errors if error.code() in wanted)


def test_each_principal_is_refused_outside_its_acls_and_no_record_changes(
    deployment: Deployment, secured_kafka: SecuredKafka, database_url: str
) -> None:
    d = deployment
    create_topics(AdminClient(secured_kafka.kafka.super_admin_config()), {d.topic: 2, d.dlq: 1})
    produce_records(
        secured_kafka.settings("producer", database_url),
        d.topic,
        [good_record(e) for e in make_clicks(10, seed=5)],
    )
    before = {topic: secured_kafka.end_offsets(topic) for topic in (d.topic, d.dlq)}

    # A consumer producing to an event topic: its events must go through the outbox.
    errors: list[KafkaError] = []
    reports: list[KafkaError | None] = []
    producer = create_producer(
        secured_kafka.settings("consumer", database_url),
        {"error_cb": errors.append, "message.timeout.ms": 20000},
    )
    producer.produce(d.topic, b"not allowed", on_delivery=lambda err, _msg: reports.append(err))
    error = _refusal(lambda: producer.poll(0.2), errors, AUTHORIZATION_ERRORS)
    assert "authorization failed" in error.str().lower()
    producer.purge()

    # The relay reading an event topic or a dead-letter topic.
    for topic in (d.topic, d.dlq):
        relay_errors: list[KafkaError] = []
        consumer = create_consumer(
            secured_kafka.settings("relay", database_url),
            f"{d.group}-relay",
            {"error_cb": relay_errors.append},
        )
        try:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            wanted = {KafkaError.TOPIC_AUTHORIZATION_FAILED}
            _refusal(lambda c=consumer: c.poll(0.2), relay_errors, wanted)
        finally:
            consumer.close()

    after = {topic: secured_kafka.end_offsets(topic) for topic in (d.topic, d.dlq)}
    assert after == before
    assert all(report is not None for report in reports)  # nothing was ever delivered
