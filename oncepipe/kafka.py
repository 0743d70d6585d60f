"""Kafka client factories: the only module that imports ``confluent_kafka``.

Producers are always idempotent with ``acks=all``; a configuration that tries to weaken that
is refused. Consumers never auto-commit and read only committed records.

Public names: ``create_producer``, ``create_consumer``, ``create_admin``, ``create_topics``,
``broker_error``, and the client types re-exported for the rest of oncepipe.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping, Sequence
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from oncepipe.errors import BrokerError, ConfigError, OncepipeError
from oncepipe.logging import LIBRDKAFKA_LOGGER
from oncepipe.settings import Settings

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "AdminClient",
    "Consumer",
    "HeadersUnreadableError",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "RawHeaders",
    "TopicPartition",
    "broker_error",
    "create_admin",
    "create_consumer",
    "create_producer",
    "create_topics",
    "message_headers",
]

RawHeaders = Sequence[tuple[str, str | bytes | None]]
"""A record's headers in order, names may repeat: bytes as read, str written as its UTF-8."""


class HeadersUnreadableError(OncepipeError):
    """The client cannot read a record's headers (a header name that is not UTF-8)."""


def message_headers(message: Message) -> list[tuple[str, bytes | None]]:
    """A consumed message's headers; ``HeadersUnreadableError`` when the client cannot read them.

    confluent-kafka returns header names as ``str``. For a name that is not UTF-8 it returns a
    partial list with a ``UnicodeDecodeError`` still pending. A plain ``message.headers()`` call
    may not catch that: once the interpreter specialises the call site in a hot loop, it skips
    the check for a pending error, and the error then surfaces at some later, unrelated line.
    ``operator.call`` goes through ``PyObject_Call``, which always checks, so the error is
    raised here. Call it at most once per message: the client caches the partial list.
    """
    try:
        headers = operator.call(message.headers)
        # Consumed messages carry a list of (name, value) pairs; the stubs also allow a dict.
        return cast("list[tuple[str, bytes | None]]", list(headers or ()))
    except (SystemError, UnicodeError, ValueError, TypeError) as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        raise HeadersUnreadableError(f"{type(cause).__name__}: {cause}") from None


# Values that, if a caller overrides them, would break exactly-once guarantees.
REQUIRED_PRODUCER_CONFIG: Mapping[str, str] = {"enable.idempotence": "true", "acks": "all"}
REQUIRED_CONSUMER_CONFIG: Mapping[str, str] = {
    "enable.auto.commit": "false",
    "enable.auto.offset.store": "false",
    "isolation.level": "read_committed",
}
_ACKS_ALL_SPELLINGS = {"all", "-1"}


def _normalise(value: Any) -> str:
    return str(value).lower()


def _refuse_weakening(config: Mapping[str, Any], required: Mapping[str, str], what: str) -> None:
    for key, needed in required.items():
        if key not in config:
            continue
        given = _normalise(config[key])
        if key == "acks" and given in _ACKS_ALL_SPELLINGS:
            continue
        if given != needed:
            raise ConfigError(
                f"{what} setting {key}={config[key]!r} is refused: oncepipe requires "
                f"{key}={needed} for exactly-once delivery; remove the override"
            )


def _base_config(settings: Settings) -> dict[str, Any]:
    # librdkafka's own log lines (``%3|...``) go through this logger, rendered and masked like
    # every other line, instead of straight to stderr.
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
    }


def create_producer(settings: Settings, extra: Mapping[str, Any] | None = None) -> Producer:
    """An idempotent producer (acks=all); ``extra`` may tune but never weaken it."""
    extra = dict(extra or {})
    _refuse_weakening(extra, REQUIRED_PRODUCER_CONFIG, "producer")
    return Producer({**_base_config(settings), **extra, **REQUIRED_PRODUCER_CONFIG})


def create_consumer(
    settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
) -> Consumer:
    """A read_committed consumer in ``group_id`` that never commits offsets on its own."""
    extra = dict(extra or {})
    _refuse_weakening(extra, REQUIRED_CONSUMER_CONFIG, "consumer")
    config = {**_base_config(settings), "group.id": group_id, **extra, **REQUIRED_CONSUMER_CONFIG}
    return Consumer(config)


def create_admin(settings: Settings, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client for topic management."""
    return AdminClient({**_base_config(settings), **(extra or {})})


def broker_error(exc: KafkaException | KafkaError, context: str) -> BrokerError:
    """Wrap a librdkafka error, keeping its code and flags; ``context`` says what we were doing."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if not isinstance(error, KafkaError):
        return BrokerError(
            f"{context}: {exc}", code=-1, name="UNKNOWN", retriable=False, fatal=False
        )
    return BrokerError(
        f"{context}: {error.name()}: {error.str()}",
        code=error.code(),
        name=error.name(),
        retriable=error.retriable(),
        fatal=error.fatal(),
    )


def create_topics(
    admin: AdminClient,
    topics: Mapping[str, int],
    *,
    config: Mapping[str, str] | None = None,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create topics (name -> partitions); return the names created, skipping existing ones."""
    new = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                 config=dict(config or {}))
        for name, partitions in topics.items()
    ]  # fmt: skip
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise broker_error(exc, f"creating topic {name}") from exc
        created.append(name)
    return created
