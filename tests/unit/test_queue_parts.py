"""Queue mode's parts without services: the mode, the group limits, the order of suspects."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from consumers.queue_counts import QueueCounts
from consumers.queue_runtime import QueueRuntime, _suspects_in_turn
from consumers.queue_settings import GroupLimits, QueueSettings, consume_mode
from oncepipe.errors import ConfigError
from oncepipe.kafka import KafkaShareConsumer
from oncepipe.settings import Settings


def test_the_mode_defaults_to_partition_and_a_bad_one_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONCEPIPE_CONSUMER_MODE", raising=False)
    assert consume_mode(None) == "partition"
    monkeypatch.setenv("ONCEPIPE_CONSUMER_MODE", "queue")
    assert consume_mode(None) == "queue"
    assert consume_mode("partition") == "partition"
    with pytest.raises(ConfigError) as caught:
        consume_mode("share")
    assert "\n" not in str(caught.value)
    assert "'share'" in str(caught.value)
    assert "--mode" in str(caught.value)


def test_the_group_limits_come_from_the_group_and_the_deadline_stays_below_the_lock() -> None:
    configs = {"share.record.lock.duration.ms": "20000", "share.delivery.count.limit": "6"}
    limits = GroupLimits.of(configs, QueueSettings())
    assert (limits.lock_duration_s, limits.delivery_limit, limits.batch_deadline_s) == (20, 6, 10)
    with pytest.raises(ConfigError, match="ONCEPIPE_QUEUE_BATCH_DEADLINE_S=20 is not below"):
        GroupLimits.of(configs, QueueSettings(batch_deadline_s=20))


def test_the_worker_sets_earliest_and_read_committed_and_the_limits_asked_for() -> None:
    assert QueueSettings().group_configs() == {
        "share.auto.offset.reset": "earliest",
        "share.isolation.level": "read_committed",
    }
    configs = QueueSettings(lock_duration_ms=15000, delivery_limit=4).group_configs()
    assert configs["share.record.lock.duration.ms"] == "15000"
    assert configs["share.delivery.count.limit"] == "4"


def test_a_delivery_limit_below_four_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from consumers.queue_settings import load_queue_settings

    monkeypatch.setenv("ONCEPIPE_QUEUE_DELIVERY_LIMIT", "3")
    with pytest.raises(ConfigError, match="ONCEPIPE_QUEUE_DELIVERY_LIMIT"):
        load_queue_settings()


@dataclass
class FakeRecord:
    offset_: int

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.offset_


def test_suspects_alternate_their_order_so_a_killers_neighbours_go_first_next_time() -> None:
    again = [(FakeRecord(n), 2) for n in (5, 6, 7)] + [(FakeRecord(n), 3) for n in (5, 6, 7)]
    order = [(r.offset(), c) for r, c in _suspects_in_turn(again)]  # type: ignore[arg-type]
    # Lower delivery counts first; ascending on even counts, descending on odd ones.
    assert order == [(5, 2), (6, 2), (7, 2), (7, 3), (6, 3), (5, 3)]


def test_counts_keep_in_flight_and_feed_the_registry() -> None:
    registry = CollectorRegistry()
    counts = QueueCounts("g", registry)
    counts.add("acquired", 10)
    counts.add("acknowledged", 7)
    counts.add("released", 2)
    counts.add("redelivered", 1)
    assert counts.snapshot()["in_flight"] == 1
    assert registry.get_sample_value("oncepipe_queue_in_flight_records", {"group": "g"}) == 1
    value = registry.get_sample_value("oncepipe_queue_acquired_records_total", {"group": "g"})
    assert value == 10


def test_a_share_consumer_refuses_the_keys_queue_mode_owns() -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", database_url="postgresql://x@y/z")
    with pytest.raises(ConfigError, match=r"isolation\.level is refused"):
        KafkaShareConsumer.create(settings, "g", {"isolation.level": "read_uncommitted"})


@dataclass
class ShareRecord(FakeRecord):
    """A record as the share consumer hands it out, delivered for the first time."""

    def delivery_count(self) -> int:
        return 1

    def error(self) -> None:
        return None


@dataclass
class FakeShareConsumer:
    records: list[ShareRecord]
    accepted: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)

    def poll(self, _timeout: float) -> list[ShareRecord]:
        polled, self.records = self.records, []
        return polled

    def accept(self, record: ShareRecord) -> None:
        self.accepted.append(record.offset())

    def release(self, record: ShareRecord) -> None:
        self.released.append(record.offset())

    def commit(self, _timeout: float) -> list[str]:
        return []


def test_a_transient_failure_is_retried_under_the_locks_not_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read-only or restarting database fails the transaction twice: the worker tries the
    same records again while the poll's deadline allows, instead of releasing them (each
    release would charge them one more delivery, towards an innocent crash dead letter)."""
    from consumers import queue_runtime
    from consumers.decoding import DecodedBatch
    from consumers.settings import ConsumerSettings

    failures = [psycopg.errors.ReadOnlySqlTransaction("read-only"), psycopg.OperationalError("x")]

    def apply_batch(*_args: object, **_kwargs: object) -> SimpleNamespace:
        if failures:
            raise failures.pop(0)
        return SimpleNamespace(events=2, applied=2, duplicates=0, emitted=0, dead_letters=0,
                               retrying=False)  # fmt: skip

    monkeypatch.setattr(queue_runtime, "apply_batch", apply_batch)
    monkeypatch.setattr(queue_runtime, "decode_records", lambda *_: DecodedBatch())
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", database_url="postgresql://x@y/z")
    consumer_settings = ConsumerSettings(
        group="g", topics=("t",), handler="m:f", retry_initial_s=0.001, retry_max_s=0.001
    )
    runtime = QueueRuntime(
        settings, consumer_settings, QueueSettings(),
        decoder=None,  # type: ignore[arg-type]  # decode_records is replaced
        handler=lambda *_: None,
    )  # fmt: skip
    kafka = FakeShareConsumer([ShareRecord(5), ShareRecord(6)])
    monkeypatch.setattr(runtime, "_kafka", lambda: kafka)
    monkeypatch.setattr(runtime, "_connection", lambda: None)
    monkeypatch.setattr(runtime, "_publish", lambda **_: None)
    runtime._step(GroupLimits(15.0, 5, 7.5))
    assert failures == []
    assert (kafka.accepted, kafka.released) == ([5, 6], [])
