"""Topic creation: each event topic and its dead-letter topic, with their settings.

The names themselves are part of the contract (``schemas.topics``); ``check_topic_name`` turns
an illegal one into a ``ConfigError``.

Public names: ``check_topic_name``, ``dlq_topic_max_bytes``, ``TopicSpec``, ``topic_plan``,
``create_event_topics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from oncepipe.errors import ConfigError
from oncepipe.kafka import AdminClient, create_topics
from producers.settings import ProducerSettings, TopicSettings
from schemas import dlq_topic_for, topic_name_problem

__all__ = [
    "TopicSpec",
    "check_topic_name",
    "create_event_topics",
    "dlq_topic_max_bytes",
    "topic_plan",
]


def check_topic_name(name: str, flag: str) -> None:
    """Refuse (ConfigError) a topic name Kafka would refuse, saying why and what is legal."""
    problem = topic_name_problem(name)
    if problem is not None:
        raise ConfigError(f"{flag} {name!r} is not a legal topic name: {problem}")


def dlq_topic_max_bytes(producer_settings: ProducerSettings) -> int:
    """``max.message.bytes`` of a dead-letter topic: the largest dead letter, framed.

    The broker checks the record batch as sent (compressed), the relay's client the record's
    uncompressed bytes; incompressible bytes grow a little under lz4, zstd and gzip (well
    under 1 %), and the batch adds its framing: 1/64 plus 4 KiB covers both.
    """
    largest = producer_settings.dead_letter_max_bytes
    return largest + largest // 64 + 4096


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_plan(
    topics: list[str], topic_settings: TopicSettings, producer_settings: ProducerSettings
) -> list[TopicSpec]:
    """What ``create_event_topics`` would create: each topic, then its dead-letter topic."""
    event_config = {
        "retention.ms": str(topic_settings.retention_ms),
        "segment.ms": str(topic_settings.segment_ms),
        "min.insync.replicas": str(topic_settings.min_insync_replicas),
        "max.message.bytes": str(producer_settings.message_max_bytes),
    }
    dlq_config = {
        **event_config,
        "retention.ms": str(topic_settings.dlq_retention_ms),
        "max.message.bytes": str(dlq_topic_max_bytes(producer_settings)),
    }
    plan: list[TopicSpec] = []
    for topic in topics:
        plan.append(TopicSpec(topic, topic_settings.partitions, event_config))
        plan.append(TopicSpec(dlq_topic_for(topic), topic_settings.dlq_partitions, dlq_config))
    return plan


def create_event_topics(
    admin: AdminClient,
    topics: list[str],
    topic_settings: TopicSettings,
    producer_settings: ProducerSettings,
) -> list[str]:
    """Create each topic and its ``.dlq``; return the names created (existing ones skipped)."""
    created: list[str] = []
    for spec in topic_plan(topics, topic_settings, producer_settings):
        created += create_topics(
            admin,
            {spec.name: spec.partitions},
            config=spec.config,
            replication_factor=topic_settings.replication_factor,
        )
    return created
