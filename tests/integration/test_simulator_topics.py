"""`oncepipe topics create` and the demo's upstream simulator (`python -m demo simulate`), run
as an operator would."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from demo.simulator import SimulationPlan, Simulator
from oncepipe.kafka import AdminClient
from oncepipe.settings import Settings
from producers.settings import ProducerSettings
from producers.topics import dlq_topic_max_bytes
from schemas import BadMagicError, Codec, CorruptBodyError, SchemaError, ValidationFailedError
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import ONCEPIPE, worker_env

pytestmark = pytest.mark.integration


def test_topics_create_makes_the_topic_and_its_dlq_with_room_for_headers(
    settings: Settings, kafka_admin: AdminClient
) -> None:
    name = f"events.t{uuid.uuid4().hex[:10]}"
    result = subprocess.run(
        [ONCEPIPE, "topics", "create", "--topic", name, "--partitions", "3", "--json"],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["created"]) == [name, f"{name}.dlq"]
    try:
        metadata = kafka_admin.list_topics(timeout=10)
        assert len(metadata.topics[name].partitions) == 3
        resources = [ConfigResource("topic", name), ConfigResource("topic", f"{name}.dlq")]
        futures = kafka_admin.describe_configs(resources)
        configs = {r.name: f.result() for r, f in futures.items()}
        limits = {name: int(config["max.message.bytes"].value) for name, config in configs.items()}
        # Whole segments are deleted: a one-day segment.ms keeps records within the inbox's reach.
        assert {int(config["segment.ms"].value) for config in configs.values()} == {86_400_000}
        producer_settings = ProducerSettings()
        assert limits[f"{name}.dlq"] == dlq_topic_max_bytes(producer_settings)
        assert limits[f"{name}.dlq"] > limits[name] + producer_settings.dlq_headroom_bytes
    finally:
        for future in kafka_admin.delete_topics([name, f"{name}.dlq"]).values():
            future.result(30)


def test_direct_mode_duplicates_are_new_records_with_the_same_event_id(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    plan = SimulationPlan(mode="direct", topic=topic, count=300, duplicate_rate=0.2, seed=11)
    manifest = tmp_path / "subs.jsonl"
    with manifest.open("w") as sink:
        report = Simulator(settings, Codec.load(), plan).run(sink)
    assert report.distinct_events == 300
    assert 30 < report.duplicates < 100
    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=300 + report.duplicates)
    assert len(records) == report.kafka_records == 300 + report.duplicates
    copies = Counter(r.headers["event_id"] for r in records)
    assert len(copies) == 300
    assert sum(1 for n in copies.values() if n == 2) == report.duplicates
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == len(records)


def test_outbox_mode_retries_add_no_rows_and_poison_is_undecodable(settings: Settings) -> None:
    plan = SimulationPlan(
        mode="outbox", topic="events.sim", count=200, duplicate_rate=0.3, poison_rate=0.1, seed=5
    )
    codec = Codec.load()
    report = Simulator(settings, codec, plan).run()
    assert report.duplicates > 0
    assert report.poison > 0
    assert report.outbox_rows == report.distinct_events + report.poison
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        values = [bytes(v) for (v,) in conn.execute("SELECT value FROM oncepipe.outbox")]
        registered = conn.execute("SELECT count(*) FROM oncepipe.schema_registry").fetchone()
    assert registered is not None
    assert registered[0] >= 1  # the upstream registered its writer schemas
    outcomes = Counter(
        type(result).__name__ for result in codec.decode_batch(values)
        if isinstance(result, SchemaError)
    )  # fmt: skip
    assert sum(outcomes.values()) == report.poison
    expected_kinds = {
        BadMagicError.__name__,
        CorruptBodyError.__name__,
        ValidationFailedError.__name__,
    }
    assert set(outcomes) <= expected_kinds
