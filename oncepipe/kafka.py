"""Kafka clients: the only module that imports ``confluent_kafka``.

Every client's librdkafka configuration starts from ``connection_config`` (where the brokers
are and how to reach them); nothing else in oncepipe writes librdkafka keys for the connection.
Producers are always idempotent with ``acks=all``; a configuration that tries to weaken that
is refused. Consumers never auto-commit and read only committed records (the one exception,
``KafkaConsumer.auto_committing``, exists to show what that costs and says so).

``KafkaConsumer`` and ``KafkaProducer`` are the typed faces of the clients oncepipe uses;
``Record`` types a consumed record without wrapping it (no object per record on the hot path).

Public names: ``connection_config``, ``consumer_config``, ``producer_config``,
``admin_config``, ``security_config``, ``KafkaConsumer``, ``KafkaProducer``, ``Record``,
``RebalanceCallback``,
``create_producer``, ``create_consumer``, ``create_admin``, ``create_topics``,
``broker_error``, ``probe_brokers``, ``refused_login``, ``message_headers``, and the client
types re-exported for the rest of oncepipe; for secured clusters, ``AclRule``,
``PipelinePrincipals``, ``pipeline_acls`` and ``apply_acls`` (one principal per component,
least privilege). Queue mode (share groups, a preview in librdkafka): ``KafkaShareConsumer``,
``share_group_configs``, ``set_share_group_configs``.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    AcknowledgeType,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    ShareConsumer,
    TopicCollection,
    TopicPartition,
)

# The ACL and resource names are public but re-exported without an __all__ (hence the note).
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from oncepipe.errors import BrokerError, ConfigError, OncepipeError
from oncepipe.logging import LIBRDKAFKA_LOGGER
from oncepipe.settings import Settings

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "AclRule",
    "AdminClient",
    "Consumer",
    "HeadersUnreadableError",
    "KafkaConsumer",
    "KafkaError",
    "KafkaException",
    "KafkaProducer",
    "KafkaShareConsumer",
    "Message",
    "PipelinePrincipals",
    "Producer",
    "RawHeaders",
    "RebalanceCallback",
    "Record",
    "TopicPartition",
    "admin_config",
    "apply_acls",
    "broker_error",
    "connection_config",
    "consumer_config",
    "create_admin",
    "create_consumer",
    "create_producer",
    "create_topics",
    "delivery_count",
    "is_fatal",
    "message_headers",
    "pipeline_acls",
    "probe_brokers",
    "producer_config",
    "records_without_errors",
    "refused_login",
    "security_config",
    "set_share_group_configs",
    "share_group_configs",
]

RawHeaders = Sequence[tuple[str, str | bytes | None]]
"""A record's headers in order, names may repeat: bytes as read, str written as its UTF-8."""


class Record(Protocol):
    """A consumed record: confluent-kafka's ``Message`` as oncepipe reads it, never wrapped.

    Topic, partition and offset are those of the record when ``error()`` is None (check that
    first). Headers are read through ``message_headers`` only, once per record.
    """

    def topic(self) -> str:
        """The record's topic."""
        ...

    def partition(self) -> int:
        """The record's partition."""
        ...

    def offset(self) -> int:
        """The record's offset."""
        ...

    def key(self) -> bytes | None:
        """The record's key, None when it has none."""
        ...

    def value(self) -> bytes | None:
        """The record's value, None for a tombstone."""
        ...

    def timestamp(self) -> tuple[int, int]:
        """(timestamp type, milliseconds since the epoch)."""
        ...

    def error(self) -> KafkaError | None:
        """The error this record stands for (end of partition, transport...), or None."""
        ...

    def headers(self) -> Any:
        """Raw headers: read them with ``message_headers`` instead."""
        ...


class HeadersUnreadableError(OncepipeError):
    """The client cannot read a record's headers (a header name that is not UTF-8)."""


def message_headers(message: Record | Message) -> list[tuple[str, bytes | None]]:
    """A consumed message's headers; ``HeadersUnreadableError`` when the client cannot read them.

    confluent-kafka returns header names as ``str``. For a name that is not UTF-8 it returns a
    partial list with a ``UnicodeDecodeError`` still pending. A plain ``message.headers()`` call
    may not catch that: once the interpreter specialises the call site in a hot loop, it skips
    the check for a pending error, and the error then surfaces at some later, unrelated line.
    ``operator.call`` goes through ``PyObject_Call``, which always checks, so the error is
    raised here. A second ``headers()`` call on the same message returns the client's cached
    partial list, whose unreadable name is a NULL pointer (a worker retrying a batch of the same
    messages crashed on it): an unreadable record's reason is remembered by its coordinates and
    raised again without asking the client.
    """
    where = (message.topic(), message.partition(), message.offset())
    known = _UNREADABLE_HEADERS.get(where)
    if known is not None:
        _UNREADABLE_HEADERS.move_to_end(where)
        raise HeadersUnreadableError(known)
    try:
        headers = operator.call(message.headers)
        # Consumed messages carry a list of (name, value) pairs; the stubs also allow a dict.
        return cast("list[tuple[str, bytes | None]]", list(headers or ()))
    except (SystemError, UnicodeError, ValueError, TypeError) as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        reason = f"{type(cause).__name__}: {cause}"
        _UNREADABLE_HEADERS[where] = reason
        if len(_UNREADABLE_HEADERS) > _UNREADABLE_REMEMBERED:
            _UNREADABLE_HEADERS.popitem(last=False)
        raise HeadersUnreadableError(reason) from None


# Records whose headers the client could not read, by (topic, partition, offset), newest last.
_UNREADABLE_HEADERS: OrderedDict[tuple[str | None, int | None, int | None], str] = OrderedDict()
_UNREADABLE_REMEMBERED = 10_000


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


def connection_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka keys every client starts from: how to reach the brokers.

    The one place settings become connection keys; every client config below builds on it.
    """
    # librdkafka's own log lines (``%3|...``) go through this logger, rendered and masked like
    # every other line, instead of straight to stderr.
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
        **security_config(settings),
    }


_warned_hostname = False


def security_config(settings: Settings) -> dict[str, str]:
    """The librdkafka security keys of ``settings`` (none for PLAINTEXT).

    The settings refused every bad combination at load; this only translates. Certificates are
    always verified; host name verification can be turned off, and each process says so once.
    """
    protocol = settings.kafka_security_protocol
    config: dict[str, str] = {"security.protocol": protocol} if protocol != "PLAINTEXT" else {}
    if protocol in ("SSL", "SASL_SSL"):
        config.update(_tls_config(settings))
    if protocol in ("SASL_SSL", "SASL_PLAINTEXT") and settings.kafka_sasl_mechanism:
        config.update(_sasl_config(settings, settings.kafka_sasl_mechanism))
    return config


def _tls_config(settings: Settings) -> dict[str, str]:
    global _warned_hostname  # noqa: PLW0603 - one warning per process, not per client
    config = {"enable.ssl.certificate.verification": "true"}
    files = {
        "ssl.ca.location": settings.kafka_ssl_ca_file,
        "ssl.certificate.location": settings.kafka_ssl_certificate_file,
        "ssl.key.location": settings.kafka_ssl_key_file,
    }
    config.update({key: str(path) for key, path in files.items() if path is not None})
    if settings.kafka_ssl_key_password is not None:
        config["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    if settings.kafka_ssl_verify_hostname:
        config["ssl.endpoint.identification.algorithm"] = "https"
    else:
        config["ssl.endpoint.identification.algorithm"] = "none"
        if not _warned_hostname:
            _warned_hostname = True
            logging.getLogger("oncepipe.kafka").warning(
                "ONCEPIPE_KAFKA_SSL_VERIFY_HOSTNAME=false: the brokers' certificates are not "
                "checked against their host names; any holder of a certificate from the CA can "
                "pose as a broker"
            )
    return config


def _sasl_config(settings: Settings, mechanism: str) -> dict[str, str]:
    config = {"sasl.mechanism": mechanism}
    if mechanism != "OAUTHBEARER":
        password = settings.kafka_sasl_password
        config["sasl.username"] = settings.kafka_sasl_username or ""
        config["sasl.password"] = password.get_secret_value() if password else ""
        return config
    secret = settings.kafka_oauthbearer_client_secret
    oidc = {
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": settings.kafka_oauthbearer_client_id,
        "sasl.oauthbearer.client.secret": secret.get_secret_value() if secret else None,
        "sasl.oauthbearer.token.endpoint.url": settings.kafka_oauthbearer_token_endpoint_url,
        "sasl.oauthbearer.scope": settings.kafka_oauthbearer_scope,
        "sasl.oauthbearer.extensions": settings.kafka_oauthbearer_extensions,
    }
    config.update({key: value for key, value in oidc.items() if value})
    return config


def producer_config(settings: Settings, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An idempotent producer's config (acks=all); ``extra`` may tune but never weaken it."""
    extra = dict(extra or {})
    _refuse_weakening(extra, REQUIRED_PRODUCER_CONFIG, "producer")
    return {**connection_config(settings), **extra, **REQUIRED_PRODUCER_CONFIG}


def consumer_config(
    settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A read_committed consumer's config that never commits offsets on its own."""
    extra = dict(extra or {})
    _refuse_weakening(extra, REQUIRED_CONSUMER_CONFIG, "consumer")
    return {
        **connection_config(settings),
        "group.id": group_id,
        **extra,
        **REQUIRED_CONSUMER_CONFIG,
    }


def admin_config(settings: Settings, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An admin client's config."""
    return {**connection_config(settings), **(extra or {})}


def create_producer(settings: Settings, extra: Mapping[str, Any] | None = None) -> Producer:
    """An idempotent producer (acks=all); ``extra`` may tune but never weaken it."""
    return Producer(producer_config(settings, extra))


def create_consumer(
    settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
) -> Consumer:
    """A read_committed consumer in ``group_id`` that never commits offsets on its own."""
    return Consumer(consumer_config(settings, group_id, extra))


def create_admin(settings: Settings, extra: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client for topic management."""
    return AdminClient(admin_config(settings, extra))


RebalanceCallback = Callable[[list[TopicPartition]], None]
"""Called with the partitions assigned, revoked or lost (inside ``consume`` and ``close``)."""


class KafkaConsumer:
    """The consumer operations oncepipe uses, typed, over one confluent-kafka client.

    ``pause``, ``resume`` and ``seek`` name a partition as ``(topic, partition)``; the group
    protocol's calls keep librdkafka's ``TopicPartition`` lists as they come.
    """

    def __init__(self, client: Consumer) -> None:
        self._client = client

    @classmethod
    def create(
        cls, settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
    ) -> KafkaConsumer:
        """A read_committed consumer in ``group_id`` that never commits offsets on its own."""
        return cls(create_consumer(settings, group_id, extra))

    @classmethod
    def auto_committing(
        cls, settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
    ) -> KafkaConsumer:
        """A consumer that commits offsets on a timer, apart from any writes: NOT exactly-once.

        Redelivers what it read since the last commit after a crash. oncepipe's workers never
        use it; it shows the failure mode they avoid (the demo's naive consumer).
        """
        config = {**connection_config(settings), "group.id": group_id, **(extra or {})}
        return cls(Consumer({**config, "enable.auto.commit": True}))

    def subscribe(
        self,
        topics: Iterable[str],
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group for ``topics``; the callbacks run inside ``consume`` and ``close``."""
        # confluent-kafka refuses None for a callback: pass only those given.
        given = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}
        callbacks = {name: _rebalance(cb) for name, cb in given.items() if cb is not None}
        self._client.subscribe(list(topics), **callbacks)

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records (errors included) within ``timeout`` seconds."""
        return cast("list[Record]", self._client.consume(max_records, timeout))

    def poll(self, timeout: float) -> Record | None:
        """One record (or error) within ``timeout`` seconds, None if none came."""
        return cast("Record | None", self._client.poll(timeout))

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions from their offsets, outside any group."""
        self._client.assign(partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        """Add partitions (from their offsets) to the assignment."""
        self._client.incremental_assign(partitions)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        """Remove partitions from the assignment."""
        self._client.incremental_unassign(partitions)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Fetch ``topic[partition]`` from ``offset`` next.

        A partition not fetching yet (just assigned) cannot seek: it is assigned again at
        ``offset`` instead, which undoes a pause of it.
        """
        start = TopicPartition(topic, partition, offset)
        try:
            self._client.seek(start)
        except KafkaException:
            self._client.incremental_unassign([TopicPartition(topic, partition)])
            self._client.incremental_assign([start])

    def pause(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Stop fetching these partitions until ``resume``."""
        self._client.pause([TopicPartition(t, p) for t, p in partitions])

    def resume(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Fetch these paused partitions again."""
        self._client.resume([TopicPartition(t, p) for t, p in partitions])

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The next offset this client will fetch for each partition."""
        return self._client.position(partitions)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        """The offsets Kafka holds for this client's group (a read, not a membership)."""
        return self._client.committed(partitions, timeout)

    def commit(self, offsets: list[TopicPartition]) -> None:
        """Commit ``offsets`` to Kafka without waiting (the client reports failures later)."""
        self._client.commit(offsets=offsets, asynchronous=True)

    def watermarks(
        self, topic: str, partition: int, *, timeout: float, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high) watermarks of ``topic[partition]``; ``cached``: from the last fetch."""
        low, high = self._client.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=cached
        )
        return int(low), int(high)

    def list_topics(self, topic: str | None = None, *, timeout: float) -> Any:
        """Cluster metadata (of one ``topic``, or of all)."""
        return self._client.list_topics(topic, timeout=timeout)

    def partition_counts(self, timeout: float = 5.0) -> dict[str, int]:
        """Partitions of every topic the cluster knows now (topics in error are left out)."""
        return _partition_counts(self._client, timeout)

    def close(self, timeout_s: float | None = None) -> bool:
        """Leave the group at once (revoke callbacks run here) and disconnect.

        With ``timeout_s``, give up waiting after that long and return False: the close goes
        on in a daemon thread, so a group coordinator that never answers cannot keep the
        process from exiting (the group then rebalances after the session timeout instead).
        """
        if timeout_s is None:
            self._client.close()
            return True
        return _close_within(self._client.close, timeout_s, "oncepipe-kafka-close")


def _close_within(close: Callable[[], None], timeout_s: float, name: str) -> bool:
    """Run a client's ``close`` in a daemon thread; False if it took over ``timeout_s``.

    An error it raised in time is raised here, in the caller's thread.
    """
    failed: list[BaseException] = []

    def run() -> None:
        try:
            close()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failed.append(exc)

    closing = threading.Thread(target=run, name=name, daemon=True)
    closing.start()
    closing.join(timeout_s)
    if failed:
        raise failed[0]
    return not closing.is_alive()


def _rebalance(callback: RebalanceCallback) -> Callable[[Consumer, list[TopicPartition]], None]:
    return lambda _client, partitions: callback(partitions)


class KafkaProducer:
    """The producer operations oncepipe uses, typed; an idempotent, acks=all client.

    ``produce`` and ``poll`` are the client's own methods (no call of ours per record).
    """

    def __init__(self, client: Producer) -> None:
        self._client = client
        self.produce = client.produce
        self.poll = client.poll

    @classmethod
    def create(cls, settings: Settings, extra: Mapping[str, Any] | None = None) -> KafkaProducer:
        """An idempotent producer (acks=all); ``extra`` may tune but never weaken it."""
        return cls(create_producer(settings, extra))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for queued records' reports; return how many are left."""
        return self._client.flush(timeout)

    def purge(self, *, in_queue: bool = True, in_flight: bool = True) -> None:
        """Drop queued (and in-flight) records; each is reported with a _PURGE_* error."""
        self._client.purge(in_queue=in_queue, in_flight=in_flight)

    def list_topics(self, topic: str | None = None, *, timeout: float) -> Any:
        """Cluster metadata (of one ``topic``, or of all)."""
        return self._client.list_topics(topic, timeout=timeout)

    def partition_counts(self, timeout: float = 5.0) -> dict[str, int]:
        """Partitions of every topic the cluster knows now (topics in error are left out)."""
        return _partition_counts(self._client, timeout)


def _partition_counts(client: Consumer | Producer, timeout: float) -> dict[str, int]:
    try:
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise broker_error(exc, "reading the cluster's topics") from exc
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and topic.partitions
    }


def is_fatal(error: KafkaError) -> bool:
    """True for a fatal error, and for librdkafka's ``_FATAL`` event announcing one.

    The event (a fenced static member: ``FENCED_INSTANCE_ID``, ``UNRELEASED_INSTANCE_ID``)
    reports ``fatal()`` false, yet the client is unusable after it: the worker must exit.
    """
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def records_without_errors(records: Sequence[Record], log: Any, doing: str) -> list[Record]:
    """The records of a poll that carry data; raises on a fatal error (context ``doing``).

    Other error events (transport hiccups and the like) are logged: librdkafka recovers on its
    own.
    """
    kept = []
    for record in records:
        error = record.error()
        if error is None:
            kept.append(record)
        elif is_fatal(error):
            raise broker_error(error, doing)
        else:
            log.warning("consumer error", error=error.str(), code=error.name())
    return kept


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
        fatal=is_fatal(error),
    )


# librdkafka's codes for a login or a TLS handshake the brokers refused: no retry can fix them.
LOGIN_ERRORS = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL"})
_PROTOCOL_MISMATCH = "security.protocol"  # how librdkafka hints at a wrong protocol


def refused_login(error: BrokerError) -> bool:
    """Whether ``error`` is a login or TLS handshake the brokers refused, or a wrong protocol."""
    mismatch = error.name == "_TRANSPORT" and _PROTOCOL_MISMATCH in str(error)
    return error.name in LOGIN_ERRORS or mismatch


def probe_brokers(settings: Settings, timeout: float) -> BrokerError | None:
    """Connect once and ask for metadata: None when the brokers answer, else why not.

    A refused login or TLS handshake is returned as soon as librdkafka reports it (see
    ``refused_login``); silence is returned after ``timeout`` seconds as the last error seen.
    The probe's client logs nothing itself: the caller reports one line.
    """
    errors: list[KafkaError] = []
    config = {**admin_config(settings), "error_cb": errors.append, "log_level": 0}
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout
    last: BrokerError | None = None
    while True:
        try:
            admin.list_topics(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
            return None
        except KafkaException as exc:
            last = broker_error(exc, "Kafka")
        admin.poll(0)  # serves error_cb
        for error in errors:
            found = broker_error(error, "Kafka")
            if refused_login(found):
                return found
        if errors:
            last = broker_error(errors[-1], "Kafka")
        if time.monotonic() >= deadline:
            return last


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


# --- Access control: one principal per component (ACLs through the Admin API) ----------------
# Kept in its own block: the rest of this module is about clients; this is about what each
# component's principal may do on a secured cluster (StandardAuthorizer, deny by default).


@dataclass(frozen=True)
class AclRule:
    """One ALLOW rule: ``principal`` may do ``operation`` on a topic, group or the cluster.

    ``name`` is a topic or group name, or a name prefix when ``prefixed``; ``"kafka-cluster"``
    for the cluster resource. Operations and resources are Kafka's names (``READ``, ``topic``).
    """

    principal: str
    resource: Literal["topic", "group", "cluster"]
    name: str
    operation: str
    prefixed: bool = False

    def __str__(self) -> str:
        pattern = "prefixed" if self.prefixed else "literal"
        return (
            f"User:{self.principal} ALLOW {self.operation} {self.resource}:{self.name} ({pattern})"
        )


DLQ_READER_GROUP_PREFIX = "oncepipe-dlq-reader-"
"""The dead-letter reader's throwaway group names start so (``consumers.dlq``'s reader)."""


@dataclass(frozen=True)
class PipelinePrincipals:
    """The principal each component runs as (SCRAM user names)."""

    admin: str = "admin"
    relay: str = "relay"
    consumer: str = "consumer"
    replay: str = "replay"
    producer: str = "producer"


def pipeline_acls(
    topics: Sequence[str],
    group_prefix: str,
    principals: PipelinePrincipals | None = None,
    *,
    dlq_suffix: str = ".dlq",
    reader_group_prefix: str = DLQ_READER_GROUP_PREFIX,
) -> list[AclRule]:
    """The least-privilege ACL set of one deployment: its event ``topics`` and consumer groups.

    - relay: WRITE (DESCRIBE is implied) on the event topics and their dead-letter topics; the
      idempotent producer needs no cluster grant on Kafka >= 3.0 (WRITE on a topic suffices).
    - consumer: READ on the event topics, READ and DESCRIBE on groups named ``group_prefix*``;
      nothing else: its derived events and dead letters leave through the outbox (the relay).
    - replay (``dlq replay``, ``dlq list``): READ on the dead-letter topics, WRITE on the event
      topics; its reader assigns partitions itself and commits nothing, but librdkafka still
      looks up the coordinator of its throwaway group: READ and DESCRIBE on groups named
      ``reader_group_prefix*``.
    - admin (``topics create``): CREATE, DESCRIBE and DESCRIBE_CONFIGS on every topic above.
    - producer (the simulator, direct producers): WRITE on the event topics.
    """
    who = principals or PipelinePrincipals()
    dead = [f"{topic}{dlq_suffix}" for topic in topics]
    rules: list[AclRule] = []

    def allow(principal: str, names: Sequence[str], *operations: str) -> None:
        rules.extend(AclRule(principal, "topic", n, op) for n in names for op in operations)

    allow(who.relay, [*topics, *dead], "WRITE")
    allow(who.consumer, topics, "READ")
    rules += [
        AclRule(who.consumer, "group", group_prefix, op, prefixed=True)
        for op in ("READ", "DESCRIBE")
    ]
    allow(who.replay, dead, "READ")
    allow(who.replay, topics, "WRITE")
    rules += [
        AclRule(who.replay, "group", reader_group_prefix, op, prefixed=True)
        for op in ("READ", "DESCRIBE")
    ]
    allow(who.admin, [*topics, *dead], "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")
    allow(who.producer, topics, "WRITE")
    return rules


_ACL_RESOURCES = {"topic": "TOPIC", "group": "GROUP", "cluster": "BROKER"}


def _acl_binding(rule: AclRule) -> AclBinding:
    return AclBinding(
        getattr(ResourceType, _ACL_RESOURCES[rule.resource]),
        rule.name,
        ResourcePatternType.PREFIXED if rule.prefixed else ResourcePatternType.LITERAL,
        f"User:{rule.principal}",
        "*",
        getattr(AclOperation, rule.operation),
        AclPermissionType.ALLOW,
    )


def apply_acls(admin: AdminClient, rules: Iterable[AclRule], timeout: float = 30.0) -> int:
    """Create ``rules`` on the cluster (existing ones are kept as they are); return the count.

    Needs a principal allowed to ALTER the cluster (a super user of the local broker).
    """
    # One binding per distinct rule: the client refuses a request that repeats one.
    bindings = [_acl_binding(rule) for rule in dict.fromkeys(rules)]
    if not bindings:
        return 0
    for binding, future in admin.create_acls(bindings, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise broker_error(exc, f"creating ACL {binding}") from exc
    return len(bindings)


# -- what a consumer's principal may do --------------------------------------------------------


def _allows_read(operations: Sequence[AclOperation] | None) -> bool:
    # None: the broker did not say (no authorizer answers with every operation).
    return operations is None or bool({AclOperation.READ, AclOperation.ALL} & set(operations))


def _may_read(future: Any, denied_code: int, timeout: float) -> bool:
    """Whether a describe answer allows READ; only an explicit denial says no."""
    try:
        return _allows_read(future.result(timeout=timeout).authorized_operations)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        return not (isinstance(error, KafkaError) and error.code() == denied_code)
    except TimeoutError:
        return True


def missing_consumer_acls(
    settings: Settings, group: str, topics: Sequence[str], timeout: float = 10.0
) -> list[str]:
    """What this principal may not do of a consumer's work: READ on each topic and the group.

    Only the brokers' explicit answer counts: a topic not created yet, or brokers that do not
    answer in ``timeout``, add nothing (a worker waits for those).
    """
    admin = AdminClient({**admin_config(settings), "log_level": 0})
    missing: list[str] = []
    described = admin.describe_topics(
        TopicCollection(list(topics)), include_authorized_operations=True, request_timeout=timeout
    )
    for name, future in described.items():
        if not _may_read(future, KafkaError.TOPIC_AUTHORIZATION_FAILED, timeout):
            missing.append(f"READ on topic {name}")
    (group_future,) = admin.describe_consumer_groups(
        [group], include_authorized_operations=True, request_timeout=timeout
    ).values()
    if not _may_read(group_future, KafkaError.GROUP_AUTHORIZATION_FAILED, timeout):
        missing.append(f"READ on group {group}")
    return missing


# -- share groups (queue mode) ------------------------------------------------------------

# Keys a share consumer must not be given: the group's configs or oncepipe's acknowledgement
# discipline own them (``isolation.level`` is refused by the client itself).
_SHARE_REFUSED = ("isolation.level", "enable.auto.commit", "share.acknowledgement.mode")


class KafkaShareConsumer:
    """A share-group member in explicit acknowledgement mode (librdkafka's preview client).

    Every record a ``poll`` returned must be accepted or released before the next ``poll``;
    ``commit`` sends those acknowledgements and says which partitions refused them (a lock
    that expired meanwhile: the record went, or goes, to another member).
    """

    def __init__(self, client: ShareConsumer) -> None:
        self._client = client

    @classmethod
    def create(
        cls, settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
    ) -> KafkaShareConsumer:
        """A member of share group ``group_id``; ``extra`` tunes the client (never the above)."""
        extra = dict(extra or {})
        for key in _SHARE_REFUSED:
            if key in extra:
                raise ConfigError(
                    f"share consumer setting {key} is refused: queue mode sets it (read "
                    "committed records come from the group config share.isolation.level)"
                )
        config = {
            **connection_config(settings),
            "group.id": group_id,
            **extra,
            "share.acknowledgement.mode": "explicit",
        }
        return cls(ShareConsumer(config))

    def subscribe(self, topics: Iterable[str]) -> None:
        """Join the share group for ``topics``."""
        self._client.subscribe(list(topics))

    def poll(self, timeout: float) -> list[Record]:
        """The records (errors included) acquired within ``timeout`` seconds, each under a lock."""
        return cast("list[Record]", list(self._client.poll(timeout)))

    def accept(self, record: Record) -> None:
        """Mark ``record`` done (sent with the next ``commit``)."""
        self._client.acknowledge(cast("Message", record), AcknowledgeType.ACCEPT)

    def release(self, record: Record) -> None:
        """Give ``record`` back for redelivery (its delivery count grows)."""
        self._client.acknowledge(cast("Message", record), AcknowledgeType.RELEASE)

    def commit(self, timeout: float) -> list[str]:
        """Send the acknowledgements; the partitions that refused them, as ``topic[p]: why``."""
        results = self._client.commit_sync(timeout)
        return [
            f"{tp.topic}[{tp.partition}]: {error}"
            for tp, error in (results or {}).items()
            if error is not None
        ]

    def close(self, timeout_s: float) -> bool:
        """Send what is acknowledged and leave the group; False if that took over ``timeout_s``.

        The close goes on in a daemon thread past ``timeout_s`` (the client's own bound is the
        socket timeout): records it still holds go back when their locks expire.
        """
        return _close_within(self._client.close, timeout_s, "oncepipe-share-close")


def delivery_count(record: Record) -> int:
    """How many times the share group handed ``record`` out (1: the first time)."""
    count = cast("Message", record).delivery_count()
    return int(count) if count is not None else 1


def _group_resource(group: str, entries: Mapping[str, str] | None = None) -> Any:
    if entries is None:
        return ConfigResource(ResourceType.GROUP, group)
    return ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in entries.items()
        ],
    )


def share_group_configs(admin: AdminClient, group: str, timeout: float = 30.0) -> dict[str, str]:
    """The ``share.*`` configs of ``group`` as the broker applies them (defaults included)."""
    resource = _group_resource(group)
    try:
        found = admin.describe_configs([resource], request_timeout=timeout)[resource].result()
    except KafkaException as exc:
        raise broker_error(exc, f"reading the configs of share group {group!r}") from exc
    return {
        name: str(entry.value)
        for name, entry in found.items()
        if name.startswith("share.") and entry.value is not None
    }


def set_share_group_configs(
    admin: AdminClient, group: str, configs: Mapping[str, str], timeout: float = 30.0
) -> None:
    """Set ``configs`` on ``group`` (an incremental alter: other configs stay as they are)."""
    resource = _group_resource(group, configs)
    try:
        admin.incremental_alter_configs([resource], request_timeout=timeout)[resource].result()
    except KafkaException as exc:
        raise broker_error(exc, f"setting the configs of share group {group!r}") from exc
