"""Topic names and topic creation: ``events.<name>`` and its dead-letter ``events.<name>.dlq``.

Public names: ``topic_for``, ``dlq_topic_for``, ``topic_name_problem``, ``check_topic_name``,
``dlq_topic_max_bytes``, ``topic_plan``, ``create_event_topics``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oncepipe.errors import ConfigError
from oncepipe.kafka import AdminClient, create_topics
from producers.settings import ProducerSettings, TopicSettings

__all__ = [
    "TopicSpec",
    "check_topic_name",
    "create_event_topics",
    "dlq_topic_for",
    "dlq_topic_max_bytes",
    "topic_for",
    "topic_name_problem",
    "topic_plan",
]

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def topic_for(event_type: str) -> str:
    """The topic of an event type: ``ClickEvent`` -> ``events.click``."""
    base = event_type.removesuffix("Event") or event_type
    return "events." + _CAMEL_BOUNDARY.sub("_", base).lower()


def dlq_topic_for(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return f"{topic}.dlq"


# Kafka's own rule (org.apache.kafka.common.internals.Topic): these characters, 1..249 of them.
_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_TOPIC_MAX = 249
_TOPIC_RULE = "Kafka topic names use letters, digits, '.', '_' and '-', at most 249"


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic name, or None when it is legal."""
    if name in {"", ".", ".."}:
        return f"{_TOPIC_RULE}, and not '', '.' or '..'"
    if len(name) > _TOPIC_MAX:
        return f"it has {len(name)} characters; {_TOPIC_RULE}"
    if not _TOPIC_CHARS.fullmatch(name):
        bad = "".join(sorted({c for c in name if not _TOPIC_CHARS.fullmatch(c)}))
        return f"it holds {bad!r}; {_TOPIC_RULE}"
    return None


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
