"""The consumer group and its topics as Kafka sees them: live members, partitions, watermarks.

Used by ``oncepipe offsets`` (which must not move the offsets of a group that is running).

Public names: ``active_members``, ``partition_bounds``.
"""

from __future__ import annotations

from oncepipe.errors import ConfigError
from oncepipe.kafka import KafkaConsumer, KafkaError, KafkaException, broker_error, create_admin
from oncepipe.settings import Settings

__all__ = ["active_members", "partition_bounds"]


def active_members(settings: Settings, group: str, timeout: float = 15.0) -> list[str]:
    """The member ids currently in ``group`` (empty when the group is unknown or empty)."""
    admin = create_admin(settings)
    future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
    try:
        description = future.result(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
            return []
        raise broker_error(exc, f"describing consumer group {group}") from exc
    return [str(member.member_id) for member in description.members]


def partition_bounds(
    settings: Settings, topic: str, timeout: float = 15.0
) -> dict[int, tuple[int, int]]:
    """Every partition of ``topic`` with its (earliest, latest) offsets."""
    # A consumer that never subscribes does not join any group: it only asks metadata.
    consumer = KafkaConsumer.create(settings, "oncepipe-offsets-tool")
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            reason = metadata.error.str() if metadata is not None else "no metadata"
            raise ConfigError(f"topic {topic!r} cannot be described ({reason}); check the name")
        bounds = {}
        for partition in sorted(metadata.partitions):
            bounds[partition] = consumer.watermarks(topic, partition, timeout=timeout)
        return bounds
    except KafkaException as exc:
        raise broker_error(exc, f"reading the offsets of {topic}") from exc
    finally:
        consumer.close()
