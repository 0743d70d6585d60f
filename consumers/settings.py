"""Settings of the consumer runtime (``ONCEPIPE_CONSUMER_*``); every CLI flag is one of these.

Read once at the entry point; the runtime receives this frozen model.

Public names: ``ConsumerSettings``, ``load_consumer_settings``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from oncepipe.settings import read_settings, split_names
from schemas import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = ["ConsumerSettings", "load_consumer_settings"]


class ConsumerSettings(BaseSettings):
    """What one consumer worker reads, how it batches, and how it behaves in its group."""

    # An empty variable means "not given" (a deployment template may leave one blank).
    model_config = SettingsConfigDict(
        env_prefix="ONCEPIPE_CONSUMER_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    group: str = Field("", description="consumer group id; a group is an independent pipeline")
    topics: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="topics to consume (comma-separated in the environment)"
    )
    handler: str = Field("", description="a registered handler name, or module:function")
    batch_size: int = Field(500, ge=1, le=100_000, description="records per transaction")
    batch_timeout_s: float = Field(
        1.0, gt=0, le=60, description="wait at most this long for a batch's first record"
    )
    batch_linger_s: float = Field(
        0.0,
        ge=0,
        le=60,
        description="after a batch's first record, wait at most this long for more (0: the "
        "batch takes what has arrived, up to batch_size, and goes)",
    )
    group_protocol: Literal["classic", "consumer"] = Field(
        "classic",
        description="group membership: classic (the client's session timeout, rebalances run "
        "by the group leader) or consumer (KIP-848: the broker assigns and owns the session "
        "timeout, group.consumer.session.timeout.ms, 45 s at least)",
    )
    # 10 s, not Kafka's 45 s: a dead worker's partitions move in about 15 s instead of 60, with
    # no false eviction measured on two loaded cores (README "Fail-over", bench/failover.py).
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="classic protocol: the broker evicts a silent member after this long "
        "(refused under group_protocol=consumer, where the broker sets it)",
    )
    instance_id: str = Field(
        "",
        max_length=249,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="static membership (group.instance.id), stable per worker slot: a worker "
        "restarted with the same id gets its partitions back without a rebalance; two live "
        "workers must never share one",
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1_000, description="a member that does not poll this long leaves the group"
    )
    close_timeout_s: float = Field(
        10.0,
        gt=0,
        description="at shutdown, wait this long to leave the group cleanly, then exit anyway "
        "(offsets live in PostgreSQL: the group rebalances after the session timeout instead)",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where to start a partition that has no stored offset"
    )
    metadata_refresh_ms: int = Field(
        30_000,
        ge=1_000,
        description="re-read the topics' metadata this often: partitions added to a topic are "
        "assigned at the next rebalance after that",
    )
    prefetch_kbytes: int = Field(
        8_192,
        ge=1_024,
        description="at most this many kilobytes of records fetched ahead of the batch in hand "
        "(librdkafka's queued.max.messages.kbytes, 64 MB by default there): a few batches of "
        "records keep the worker busy; more only holds memory",
    )
    offset_out_of_range: Literal["hold", "reset"] = Field(
        "hold",
        description="a stored offset outside the log (topic recreated, records gone with "
        "retention): hold the partition until `oncepipe offsets reset`, or reset it to the log "
        "start with a warning",
    )
    out_of_range_recheck_s: float = Field(
        60.0, gt=0, description="a partition held out of range is checked and logged this often"
    )
    retry_initial_s: float = Field(0.2, gt=0, description="first backoff after a transient error")
    retry_max_s: float = Field(10.0, gt=0, description="longest backoff between retries")
    max_attempts: int = Field(
        3, ge=1, description="non-transient failures of one record before it is dead-lettered"
    )
    unknown_schema_grace_s: float = Field(
        300.0,
        ge=0,
        description="an unknown writer schema is retried this long (it may not be registered "
        "yet), then dead-lettered",
    )
    on_poison: Literal["skip", "park-key"] = Field(
        "skip",
        description="after a dead letter: skip (its key's later events flow on) or park-key "
        "(they wait, in order, until the dead letter is replayed or discarded)",
    )
    park_release_check_s: float = Field(
        5.0, gt=0, description="park-key: an idle worker looks for discarded blockers this often"
    )
    crash_attempts: int = Field(
        3,
        ge=0,
        description="batch attempts of one offset range that end with the worker dead before the "
        "range is narrowed to one record per batch; a record alone that kills the worker as "
        "often is dead-lettered with stage crash (0: no attempt record, no detection)",
    )
    retry_tiers: Annotated[tuple[float, ...], NoDecode] = Field(
        (10.0, 60.0, 600.0),
        description="delays in seconds of the tiers an event raising RetryLater goes through "
        "(comma-separated in the environment); dead-lettered after the last",
    )
    retry_check_s: float = Field(
        1.0, gt=0, description="a worker looks for due delayed retries this often"
    )
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES,
        ge=1_024,
        description="a larger record is poison (dead-lettered without being decoded)",
    )
    inbox_retention_days: int = Field(
        14,
        ge=2,
        description="drop inbox partitions older than this; must exceed the topics' retention "
        "plus the longest replay window",
    )
    inbox_maintenance_interval_s: float = Field(
        3600.0, ge=0, description="check inbox partitions coverage this often (0: never)"
    )
    commit_kafka_offsets: bool = Field(
        True, description="also commit offsets to Kafka (for lag tools only; PG is the truth)"
    )
    client_id: str = Field("oncepipe-consumer", description="Kafka client.id of the worker")

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        return tuple(split_names(value)) if isinstance(value, str) else value

    @field_validator("retry_tiers", mode="before")
    @classmethod
    def _split_tiers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(float(part) for part in split_names(value))
        return value

    @field_validator("retry_tiers")
    @classmethod
    def _positive_tiers(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("retry_tiers must list one or more delays >= 0 (seconds)")
        return value

    @model_validator(mode="after")
    def _retry_bounds(self) -> ConsumerSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self

    @model_validator(mode="after")
    def _protocol_owns_timeouts(self) -> ConsumerSettings:
        if self.group_protocol == "consumer" and "session_timeout_ms" in self.model_fields_set:
            raise ValueError(
                "ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS (--session-timeout-ms) cannot be set with "
                "ONCEPIPE_CONSUMER_GROUP_PROTOCOL=consumer: the broker owns that timeout "
                "(group.consumer.session.timeout.ms); unset it, or choose group protocol classic"
            )
        return self

    def heartbeat_interval_ms(self) -> int:
        """A third of the session timeout, the ratio Kafka recommends."""
        return max(100, self.session_timeout_ms // 3)

    def client_config(self) -> dict[str, str | int]:
        """The librdkafka properties these settings stand for.

        Connection keys come first from ``oncepipe.kafka.connection_config``, the guarded ones
        last from the factory: these only tune the client. Under the consumer protocol
        librdkafka refuses the session, heartbeat and assignor keys: the broker owns them, and
        its assignment is incremental as the cooperative one is (the same callbacks serve).
        """
        config: dict[str, str | int] = {"group.protocol": self.group_protocol}
        if self.group_protocol == "classic":
            config.update(
                {
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": self.session_timeout_ms,
                    "heartbeat.interval.ms": self.heartbeat_interval_ms(),
                }
            )
        if self.instance_id:
            config["group.instance.id"] = self.instance_id
        config.update(
            {
                "max.poll.interval.ms": self.max_poll_interval_ms,
                "auto.offset.reset": self.auto_offset_reset,
                "topic.metadata.refresh.interval.ms": self.metadata_refresh_ms,
                "queued.max.messages.kbytes": self.prefetch_kbytes,
                "client.id": self.client_id,
            }
        )
        return config


def load_consumer_settings(**overrides: Any) -> ConsumerSettings:
    """Read consumer settings from the environment plus CLI overrides (None means not given)."""
    return read_settings(ConsumerSettings, overrides, what="consumer configuration")
