"""The pipeline under test: its own database and topics on the given services, and its workers.

Each run creates a fresh migrated database and fresh topics (named after the seed), so runs
never mix and a failed run can be inspected afterwards. The harness's own bookkeeping lives in
schema ``chaos`` of that database: ``chaos.offset_history`` gets one row per committed change of
a stored offset, written by a trigger in the changing transaction itself, so the "offsets never
go backwards" check sees every committed value, not just the ones a sampler happened to catch.
``chaos.witness`` is the apply witness every consumer's handler writes (tests/fixtures/witness.py).

Public names: ``Pipeline``, ``Services``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from pydantic import SecretStr

from demo.processes import DEMO
from infra import Kafka, Postgres
from oncepipe.kafka import AdminClient
from oncepipe.migrations import apply_migrations
from oncepipe.settings import Settings
from producers.settings import ProducerSettings, TopicSettings
from producers.topics import create_event_topics
from schemas import dlq_topic_for
from tests.faults.chaos.config import DEFAULT_SESSION_TIMEOUT_MS, ChaosConfig
from tests.faults.chaos.network import Network
from tests.faults.chaos.poison_checks import FLAKY_DDL, RETRY_TIERS
from tests.faults.chaos.poison_faults import (
    MARKED_HANDLER,
    POISON_DEFECTS,
    SIMULATOR_POISON_SHARE,
)
from tests.faults.chaos.queue_mode import queue_consumer_env
from tests.faults.chaos.relay_faults import RELAY_LEASE_S
from tests.faults.chaos.workers import DEFECT_SHIM, ONCEPIPE, Proc, Role, WorkerSet
from tests.fixtures.witness import WITNESS_DDL

__all__ = ["Pipeline", "Services"]

OFFSET_HISTORY = """
CREATE SCHEMA IF NOT EXISTS chaos;
CREATE TABLE chaos.offset_history (
    id             bigserial PRIMARY KEY,
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    old_offset     bigint,
    new_offset     bigint      NOT NULL,
    writer         text        NOT NULL DEFAULT current_setting('application_name'),
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos.record_offset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos.offset_history (consumer_group, topic, partition, old_offset, new_offset)
    VALUES (NEW.consumer_group, NEW.topic, NEW.partition,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.next_offset END, NEW.next_offset);
    RETURN NEW;
END;
$$;
CREATE TRIGGER chaos_offset_history AFTER INSERT OR UPDATE ON oncepipe.consumer_offsets
    FOR EACH ROW EXECUTE FUNCTION chaos.record_offset();
"""

# Roles whose workers run behind the defect shim, per defect.
DEFECT_ROLES = {
    "skip_inbox": "consumer",
    "offset_before_commit": "consumer",
    "no_cas": "consumer",
    "double_count": "consumer",
    "relay_high_water": "relay",
    "relay_shared_shards": "relay",
    "dead_letter_outside_txn": "consumer",
    "dead_letter_id_without_group": "consumer",
    "reversed_batch": "consumer",
    "queue_ack_before_commit": "consumer",
}
# Every consumer runs its handler under the witness (tests/fixtures/witness.py).
HANDLER = "tests.fixtures.witness:witnessed_clicks"
DEFECT_HANDLERS = {
    "skip_inbox": "tests.faults.chaos.defects:at_least_once_clicks",
    "double_count": "tests.faults.chaos.defects:double_counting_clicks",
    "reversed_batch": "tests.faults.chaos.defects:reversed_batch_clicks",
}


@dataclass(frozen=True)
class Services:
    """The native service controllers the run uses (and the faults kill)."""

    kafka: Kafka
    postgres: Postgres

    @property
    def brokers(self) -> int:
        """Nodes in the Kafka cluster."""
        return len(self.kafka.nodes)


class Pipeline:
    """Database, topics and workers of one run."""

    def __init__(self, config: ChaosConfig, services: Services, workdir: Path) -> None:
        self.config = config
        self.services = services
        self.workdir = workdir
        self.run_id = f"{config.seed}_{uuid.uuid4().hex[:6]}"
        self.database = f"chaos_{self.run_id}"
        self.group = f"chaos-{self.run_id}"
        # The second_group fault starts consumers of this group on the same topics.
        self.second_group = f"{self.group}-b"
        self.topics = {
            "outbox": f"chaos.{self.run_id}.outbox",
            "direct": f"chaos.{self.run_id}.direct",
        }
        self.admin_url = make_conninfo(services.postgres.url, dbname="postgres")
        self.url = make_conninfo(services.postgres.url, dbname=self.database)
        self.settings = Settings(
            kafka_bootstrap_servers=services.kafka.bootstrap_servers,
            database_url=SecretStr(self.url),
        )
        self.manifests = {mode: workdir / f"manifest-{mode}.jsonl" for mode in self.topics}
        self.gap_manifest = workdir / "manifest-gap.jsonl"
        self.poison_manifest = workdir / "manifest-poison.jsonl"
        self.hostile_manifest = workdir / "manifest-hostile.jsonl"  # valid hostile events
        self.marked_manifest = workdir / "manifest-marked.jsonl"  # marked events that apply
        self.marks_manifest = workdir / "manifest-marks.jsonl"  # every marked record
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.workers = WorkerSet(self._base_env(), workdir / "logs")
        self.load_ends_at = config.load_seconds
        self.network = Network(services.kafka, services.postgres) if config.network else None

    # -- set-up --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create and migrate the database, install the offset history, create the topics."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        host, port = "127.0.0.1", self.services.postgres.port
        apply_migrations(f"postgresql://oncepipe@{host}:{port}/{self.database}")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(OFFSET_HISTORY)
            conn.execute(WITNESS_DDL)
            conn.execute(FLAKY_DDL)
        admin = AdminClient({"bootstrap.servers": self.services.kafka.bootstrap_servers})
        create_event_topics(
            admin, list(self.topics.values()), self.topic_settings, ProducerSettings()
        )

    @property
    def topic_settings(self) -> TopicSettings:
        """Partitions, replicas and min.insync.replicas of the run's topics."""
        replicas = min(3, self.services.brokers)
        return TopicSettings(
            partitions=self.config.partitions,
            replication_factor=replicas,
            min_insync_replicas=2 if replicas == 3 else 1,
        )

    def groups(self) -> list[str]:
        """The consumer groups that ran: the first, and the second once a fault started it."""
        second = any(p.role == "second_consumer" for p in self.workers.procs.values())
        return [self.group, self.second_group] if second else [self.group]

    def dlq_topics(self) -> dict[str, str]:
        """Each topic's dead-letter topic."""
        return {mode: dlq_topic_for(topic) for mode, topic in self.topics.items()}

    def _base_env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("ONCEPIPE_")}
        return {
            **keep,
            "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": self.services.kafka.bootstrap_servers,
            "ONCEPIPE_DATABASE_URL": self.url,
            "ONCEPIPE_LOG_FORMAT": "json",
            "ONCEPIPE_LOG_LEVEL": "INFO",
            "ONCEPIPE_CHAOS_DEFECT": self.config.defect,
        }

    # -- workers ---------------------------------------------------------------------------
    def _paths(self, *, database: bool) -> dict[str, str]:
        """Environment sending a worker through the proxies (with ``--network``)."""
        if self.network is None:
            return {}
        env = {"ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": self.network.bootstrap_servers}
        if database:
            env["ONCEPIPE_DATABASE_URL"] = self.network.database_url(self.url)
        return env

    def close(self) -> None:
        """Stop the proxies (the workers are stopped by then)."""
        if self.network is not None:
            self.network.close()

    def _command(self, role: str) -> list[str]:
        shim = DEFECT_ROLES.get(self.config.defect) == role
        return [*DEFECT_SHIM] if shim else [ONCEPIPE]

    def consumer_argv(self, group: str = "") -> list[str]:
        """``oncepipe consume`` for ``group`` (default: the run's first group), behind the shim
        for a consumer defect, with the handler under the witness."""
        default = MARKED_HANDLER if self.config.poison_policies else HANDLER
        handler = DEFECT_HANDLERS.get(self.config.defect, default)
        topics = [arg for topic in self.topics.values() for arg in ("--topic", topic)]
        return [
            *self._command("consumer"), "consume", "--group", group or self.group, *topics,
            "--handler", handler,
            *self._session_timeout_args(),
            "--batch-size", str(self.config.batch_size), "--batch-timeout", "0.3",
            *(["--mode", "queue"] if self.config.mode == "queue" else []),
        ]  # fmt: skip

    def _session_timeout_args(self) -> list[str]:
        """The flag only when the run overrides the product's default (which it proves)."""
        if self.config.session_timeout_ms == DEFAULT_SESSION_TIMEOUT_MS:
            return []
        return ["--session-timeout-ms", str(self.config.session_timeout_ms)]

    def add_consumer(self, role: Role = "consumer") -> Proc:
        """Start one more member of the first group (or of the second: ``second_consumer``)."""
        prefix = "consumer" if role == "consumer" else "consumer-b"
        name = f"{prefix}-{len([p for p in self.workers.procs.values() if p.role == role])}"
        group = self.group if role == "consumer" else self.second_group
        env = {
            "ONCEPIPE_CONSUMER_CLIENT_ID": name,
            "ONCEPIPE_CONSUMER_RETRY_MAX_S": "2",
            # The raw poison's unknown schema fingerprint holds its partition this long (a
            # schema may be registered late) before it is dead-lettered; 300 s by default.
            "ONCEPIPE_CONSUMER_UNKNOWN_SCHEMA_GRACE_S": "5",
            **self._poison_env(),
            **(queue_consumer_env(self.config) if self.config.mode == "queue" else {}),
            **self._paths(database=True),
        }
        return self.workers.add(name, role, self.consumer_argv(group), env)

    def _poison_env(self) -> dict[str, str]:
        if not self.config.poison_policies:
            return {}
        return {"ONCEPIPE_CONSUMER_ON_POISON": "park-key",
                "ONCEPIPE_CONSUMER_RETRY_TIERS": RETRY_TIERS,
                **POISON_DEFECTS.get(self.config.defect, {})}  # fmt: skip

    def add_relay(self) -> Proc:
        """Start one more relay (the relays share the outbox's shards, each leased by one)."""
        name = f"relay-{len([p for p in self.workers.procs.values() if p.role == 'relay'])}"
        argv = [*self._command("relay"), "relay", "--poll-interval", "0.5", "--batch-size", "500"]
        env = {
            "ONCEPIPE_PRODUCER_LINGER_MS": "5",
            "ONCEPIPE_RELAY_LEASE_S": str(RELAY_LEASE_S),
            **self._paths(database=False),
        }
        return self.workers.add(name, "relay", argv, env)

    def simulator_argv(self, mode: str, rate: float) -> list[str]:
        """``oncepipe simulate`` for one upstream style, paced to finish on time."""
        config = self.config
        count = config.outbox_events if mode == "outbox" else config.direct_events
        seed = config.seed * 2 + (0 if mode == "outbox" else 1)  # two different upstreams
        poison_rate = config.poison_rate * (SIMULATOR_POISON_SHARE if config.poison_policies else 1)
        return [
            *DEMO, "simulate", "--mode", mode, "--topic", self.topics[mode],
            "--count", str(count), "--keys", str(config.keys), "--items", str(config.items),
            "--duplicate-rate", str(config.duplicate_rate),
            "--poison-rate", str(poison_rate), "--rate", f"{rate:.3f}",
            "--seed", str(seed), "--manifest", str(self.manifests[mode]), "--json",
        ]  # fmt: skip

    def add_simulators(self) -> None:
        """Start both upstreams; their pace spreads the events over the load period."""
        for mode in self.topics:
            count = self.config.outbox_events if mode == "outbox" else self.config.direct_events
            rate = count * (1 + self.config.duplicate_rate) / self.config.load_seconds
            self.workers.add(f"simulator-{mode}", "simulator", self.simulator_argv(mode, rate), {})
        self.workers.on_exit = self._repace_simulator

    def _repace_simulator(self, proc: Proc, _exit: object) -> None:
        """A restarted simulator replays from its first submission (the outbox absorbs the
        retries, the inbox the direct re-sends); pace it to still finish on time."""
        if proc.role != "simulator":
            return
        mode = proc.name.removeprefix("simulator-")
        count = self.config.outbox_events if mode == "outbox" else self.config.direct_events
        remaining = max(10.0, self.load_ends_at - self.workers.elapsed())
        proc.argv = self.simulator_argv(mode, count * (1 + self.config.duplicate_rate) / remaining)

    def simulators_done(self) -> bool:
        """True once both simulators finished (exit 0)."""
        sims = [p for p in self.workers.procs.values() if p.role == "simulator"]
        return all(p.retired for p in sims)

    def connect(self, application_name: str = "oncepipe-chaos") -> psycopg.Connection[TupleRow]:
        """A connection to the run's database."""
        return psycopg.connect(self.url, application_name=application_name, connect_timeout=5)

    def wait_database(self, timeout: float = 60.0) -> None:
        """Wait until the run's database accepts connections again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.5)
        print("chaos: database still unreachable", file=sys.stderr)
