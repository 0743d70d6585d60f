"""The pipeline with every component on its own PostgreSQL role, over TLS, and Kafka secured.

Each component logs in to the secured PostgreSQL (hostssl, scram-sha-256, ``sslmode=
verify-full``) as its own role, with its password read from its passfile, and to the secured
broker as its own principal: the producer writes clicks, two consumer workers apply them (one is
killed midway), the relay publishes the dead letters the consumers wrote to the outbox, the dlq
tool replays them once fixed. Every click is counted once; no role needed more than its grants.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from infra.workers import Child, Supervisor
from tests.fixtures.handlers import CATALOG_TABLE
from tests.fixtures.poison import good_record, produce_records
from tests.fixtures.relay import ONCEPIPE
from tests.fixtures.secured import SecuredKafka
from tests.fixtures.secured_postgres import SecuredPostgres
from tests.fixtures.workers import caught_up, expected_totals, make_clicks, read_totals, wait_until

pytestmark = pytest.mark.integration

# Kafka principal -> PostgreSQL component role.
ROLE_OF = {"admin": "migrator", "producer": "producer", "consumer": "consumer",
           "relay": "relay", "replay": "replay"}  # fmt: skip


@dataclass
class Deployment:
    """One topic and group on the secured broker and a fresh database on the secured server."""

    kafka: SecuredKafka
    postgres: SecuredPostgres
    database: str
    logs: Path
    topic: str = field(default_factory=lambda: f"pgsec.{uuid.uuid4().hex[:10]}")
    group: str = field(default_factory=lambda: f"pg-{uuid.uuid4().hex[:8]}")
    processes: Supervisor = field(default_factory=Supervisor)

    def url(self, principal: str) -> str:
        """The database URL of ``principal``'s component role (no password in it)."""
        return self.postgres.url(ROLE_OF.get(principal, principal), self.database)

    def env(self, principal: str) -> dict[str, str]:
        """A component's environment: its own role and its own Kafka principal."""
        return {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": self.url(principal),
            "ONCEPIPE_LOG_FORMAT": "json",
            "ONCEPIPE_RELAY_POLL_INTERVAL_S": "0.2",
            "ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S": "0.3",
            "ONCEPIPE_CONSUMER_RETRY_MAX_S": "2",
            **self.kafka.env(principal),
        }

    def oncepipe(self, principal: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one ``oncepipe`` command as ``principal``."""
        return subprocess.run(
            [ONCEPIPE, *args], env=self.env(principal), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=120, check=False,
        )  # fmt: skip

    def start(self, name: str, principal: str, *args: str) -> Child:
        """Start a long-running ``oncepipe`` command as ``principal``."""
        return self.processes.start(
            name, [ONCEPIPE, *args], env=self.env(principal), log=self.logs / f"{name}.log"
        )


@pytest.fixture
def deployment(
    secured_kafka: SecuredKafka, secured_postgres: SecuredPostgres, tmp_path: Path
) -> Iterator[Deployment]:
    """A fresh deployment; its processes are killed afterwards."""
    deployed = Deployment(
        secured_kafka, secured_postgres, secured_postgres.fresh_database(), tmp_path
    )
    secured_kafka.grant([deployed.topic], deployed.group)
    try:
        yield deployed
    finally:
        deployed.processes.kill_all()


def test_each_click_applied_once_with_every_component_on_its_own_role_over_tls(
    deployment: Deployment,
) -> None:
    d = deployment
    admin = d.postgres.url("admin", d.database)
    created = d.oncepipe("admin", "topics", "create", "--topic", d.topic, "--partitions", "3")
    assert created.returncode == 0, created.stderr
    events = make_clicks(200, seed=20)
    with psycopg.connect(admin) as conn:
        # The business table the handler reads: the operator grants it to the consumers.
        conn.execute(CATALOG_TABLE)
        conn.execute("GRANT SELECT ON public.test_catalog TO oncepipe_consumer")
        conn.execute(
            "INSERT INTO public.test_catalog SELECT unnest(%s::text[])",
            (sorted({e.item_id for e in events}),),
        )
    refused = events[120].model_copy(update={"item_id": "new-item"})
    clicks = [*events[:120], refused, *events[121:]]
    producer = d.kafka.settings("producer", d.url("producer"))

    d.start("relay", "relay", "relay")
    handler = "tests.fixtures.handlers:catalog_clicks"
    consume = ("consume", "--group", d.group, "--topic", d.topic, "--handler", handler)
    workers = [d.start(f"consumer-{i}", "consumer", *consume) for i in range(2)]
    first = [good_record(e) for e in clicks[:100] + clicks[:20]]  # 20 sent twice
    records = len(produce_records(producer, d.topic, first))
    wait_until(caught_up(admin, d.group, records), 120, "the first part applied")
    workers[1].kill()
    records += len(produce_records(producer, d.topic, [good_record(e) for e in clicks[100:]]))
    wait_until(caught_up(admin, d.group, records), 120, "the rest applied")
    dlq = f"{d.topic}.dlq"
    wait_until(lambda: sum(d.kafka.end_offsets(dlq).values()) == 1, 60, "the dead letter")

    with psycopg.connect(admin) as conn:
        conn.execute("INSERT INTO public.test_catalog VALUES ('new-item')")
    replayed = d.oncepipe("replay", "dlq", "replay", "--topic", dlq, "--yes", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["counts"] == {"sent": 1}
    wait_until(caught_up(admin, d.group, records + 1), 60, "the replay applied")

    totals = read_totals(admin, d.group)
    items, user_items = expected_totals(clicks)
    assert sorted(totals.raw_ids) == sorted({e.event_id for e in clicks})
    assert totals.inbox == len(clicks)
    assert totals.items == dict(items)
    assert totals.user_items == dict(user_items)
    for log in d.logs.glob("*.log"):
        text = log.read_text()
        assert "permission denied" not in text, (log.name, text[-2000:])
        for password in d.postgres.passwords():
            assert password not in text, log.name
