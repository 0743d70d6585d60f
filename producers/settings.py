"""Settings of the producer, the relay and topic creation (``ONCEPIPE_PRODUCER_*``, ...).

Read once at the entry point; components receive these frozen models.

Public names: ``ProducerSettings``, ``RelaySettings``, ``TopicSettings``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ProducerSettings", "RelaySettings", "TopicSettings"]


class ProducerSettings(BaseSettings):
    """Tuning of the idempotent producer; idempotence and acks=all are not settings."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_PRODUCER_", frozen=True, extra="ignore")

    linger_ms: int = Field(5, ge=0, description="wait this long to fill a batch")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    # librdkafka keeps ordering with idempotence for up to 5 requests in flight.
    max_in_flight: int = Field(5, ge=1, le=5)
    delivery_timeout_ms: int = Field(120_000, ge=1_000, description="give up on a record after")
    message_max_bytes: int = Field(1_048_576, ge=1_024, description="largest record accepted")
    # A dead letter is a source record (at most message_max_bytes of key, value and headers)
    # plus the dlq.* failure context, which consumers/dlq/headers.py bounds to about 13 KB.
    dlq_headroom_bytes: int = Field(
        64 * 1024, ge=16 * 1024, description="room for dead-letter headers above the largest record"
    )
    queue_max_messages: int = Field(100_000, ge=1_000)

    @property
    def dead_letter_max_bytes(self) -> int:
        """The largest dead letter: the largest source record plus the dead-letter headers."""
        return self.message_max_bytes + self.dlq_headroom_bytes

    def for_dead_letters(self) -> ProducerSettings:
        """These settings with a client limit that admits the largest dead letter."""
        return self.model_copy(update={"message_max_bytes": self.dead_letter_max_bytes})

    def client_config(self) -> dict[str, str | int]:
        """The librdkafka properties these settings stand for."""
        return {
            "linger.ms": self.linger_ms,
            "compression.type": self.compression,
            "max.in.flight.requests.per.connection": self.max_in_flight,
            "delivery.timeout.ms": self.delivery_timeout_ms,
            "message.max.bytes": self.message_max_bytes,
            "queue.buffering.max.messages": self.queue_max_messages,
        }


class RelaySettings(BaseSettings):
    """How the relay reads the outbox."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_RELAY_", frozen=True, extra="ignore")

    batch_size: int = Field(1000, ge=1, le=50_000, description="outbox rows per publish batch")
    poll_interval_s: float = Field(1.0, gt=0, description="poll this often when no NOTIFY comes")
    listen: bool = Field(True, description="wake on LISTEN/NOTIFY; off means polling only")
    retention_s: float = Field(
        7 * 24 * 3600.0, ge=0, description="delete published rows older than this"
    )
    cleanup_interval_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(
        10, ge=1, description="a row refused this many times for a permanent reason is parked"
    )
    pass_timeout_s: float = Field(
        10.0, gt=0, description="wait at most this long for a batch's acks; the rest are held"
    )
    retry_backoff_s: float = Field(
        1.0, gt=0, description="first hold of a partition whose rows were not acknowledged"
    )
    retry_backoff_max_s: float = Field(
        30.0, gt=0, description="longest hold of a partition (doubles per failed pass up to this)"
    )
    metadata_max_age_s: float = Field(
        30.0,
        gt=0,
        description="re-read each topic's partition count this often (partitions added to a "
        "live topic move keys from then on)",
    )
    lease_s: float = Field(
        10.0,
        gt=0,
        description="a relay's hold on its outbox shards; a relay silent this long loses them",
    )


class TopicSettings(BaseSettings):
    """Partitions and configs of the event topics and their dead-letter topics."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_TOPICS_", frozen=True, extra="ignore")

    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int = Field(1, ge=1)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)
    # Kafka deletes whole segments: a record can outlive retention.ms by up to segment.ms, and
    # the inbox must outlive both (docs/design.md section 10). The broker default is 7 days.
    segment_ms: int = Field(24 * 3600 * 1000, ge=60_000)
    dlq_partitions: int = Field(1, ge=1)
    dlq_retention_ms: int = Field(30 * 24 * 3600 * 1000, ge=-1)
