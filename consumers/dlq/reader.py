"""Reading dead-letter topics: from the beginning to the end they had when reading started.

The reader assigns partitions itself (no group membership, no offset commits: looking at a
dead-letter topic never moves anybody's position) and stops at each partition's high
watermark taken up front, so a scan ends even while new dead letters arrive.

A dead letter whose headers carry no ``event_id`` (or ``event_type``) takes them from its
value when that decodes, here and only here, so every command filters, shows, replays and
records the same event id.

Public names: ``DLQ_SUFFIXES``, ``is_dlq_topic``, ``Selection``, ``DeadLetterReader``,
``Scan``, ``DeadLetterNotFoundError``, ``lenient_codec``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import psycopg

from consumers.dlq.fingerprint import fingerprint_of
from consumers.dlq.headers import (
    DeadLetter,
    DeadLetterFormatError,
    parse_dead_letter,
    parse_ref,
    unreadable_dead_letter,
)
from consumers.dlq.payload import decode_payload
from oncepipe.errors import ConfigError, OncepipeError
from oncepipe.kafka import (
    HeadersUnreadableError,
    KafkaConsumer,
    KafkaError,
    KafkaException,
    Record,
    TopicPartition,
    broker_error,
    message_headers,
)
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from schemas import Codec, SchemaStore, dlq_topic_for, register_schema_path

__all__ = [
    "DLQ_SUFFIXES",
    "DeadLetterNotFoundError",
    "DeadLetterReader",
    "Scan",
    "Selection",
    "is_dlq_topic",
    "lenient_codec",
]

log = get_logger("dlq.reader")

# oncepipe names them <topic>.dlq, Spring's default is <topic>.DLT.
DLQ_SUFFIXES = (".dlq", ".DLT")


def is_dlq_topic(name: str) -> bool:
    """True when the name says dead-letter topic."""
    return name.endswith(DLQ_SUFFIXES)


def lenient_codec(settings: Settings) -> Codec:
    """A codec whose schema-store lookups give up quietly: reading must not need PostgreSQL.

    It knows the types on ``settings.schema_path`` and those of installed entry points.
    """
    register_schema_path(settings.schema_path)
    store = SchemaStore(settings.database_url.get_secret_value())

    def lookup(fingerprint: str) -> str | None:
        try:
            return store.lookup(fingerprint)
        except psycopg.Error:
            return None

    return Codec.load(lookup=lookup)


class DeadLetterNotFoundError(OncepipeError):
    """No dead letter sits at the requested coordinates."""


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command works on; empty fields select everything."""

    topics: tuple[str, ...] = ()
    """Source topics or dead-letter topics (names ending ``.dlq``/``.DLT``)."""
    dlq_topics: tuple[str, ...] = ()
    """Topics to read as dead-letter topics whatever their names."""
    group: str | None = None
    error: str | None = None
    """A substring of the error class or message, case-insensitive."""
    stage: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_ids: frozenset[str] = frozenset()
    fingerprint: str | None = None
    refs: tuple[str, ...] = ()

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` passes every filter."""
        sources = [t for t in self.topics if not is_dlq_topic(t)]
        checks = (
            not sources
            or letter.source_topic in sources
            or letter.dlq_topic in self.topics
            # No source known (unreadable headers): the dead-letter topic named after one.
            or (letter.source_topic is None and _named_after(letter.dlq_topic, sources)),
            self.group is None or letter.consumer_group == self.group,
            self.stage is None or letter.stage == self.stage,
            self.error is None or self._error_matches(letter),
            not self.event_ids or letter.event_id in self.event_ids,
            self.fingerprint is None or fingerprint_of(letter).startswith(self.fingerprint),
            self._in_window(letter.failed_at),
        )
        return all(checks)

    def _error_matches(self, letter: DeadLetter) -> bool:
        needle = (self.error or "").lower()
        return needle in letter.error_class.lower() or needle in letter.error_message.lower()

    def _in_window(self, moment: datetime | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


def _named_after(dlq_topic: str, sources: list[str]) -> bool:
    return any(dlq_topic in (dlq_topic_for(s), f"{s}.DLT") for s in sources)


@dataclass
class Scan:
    """What a scan found: the dead letters selected, and records that were not dead letters."""

    topics: list[str]
    letters: list[DeadLetter] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """``ref: reason`` of records in a dead-letter topic that could not be parsed."""


class DeadLetterReader:
    """Reads dead-letter topics with a consumer that never joins a group or commits."""

    def __init__(self, settings: Settings, *, idle_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._idle_timeout_s = idle_timeout_s
        self._codec: Codec | None = None

    def select(self, selection: Selection, *, limit: int | None = None) -> Scan:
        """Every selected dead letter (at most ``limit``), in topic/partition/offset order."""
        if selection.refs:
            letters = [self.fetch(ref) for ref in selection.refs]
            scan = Scan(sorted({letter.dlq_topic for letter in letters}))
            scan.letters = [letter for letter in letters if selection.matches(letter)][:limit]
            return scan
        consumer = self._consumer()
        try:
            scan = Scan(self._topics(consumer, selection))
            for letter in self._read(consumer, scan):
                if selection.matches(letter):
                    scan.letters.append(letter)
                    if limit is not None and len(scan.letters) >= limit:
                        break
            return scan
        finally:
            consumer.close()

    def fetch(self, ref: str) -> DeadLetter:
        """The dead letter at ``<dlq-topic>:<partition>:<offset>``."""
        try:
            topic, partition, offset = parse_ref(ref)
        except DeadLetterFormatError as exc:
            raise ConfigError(str(exc)) from exc
        consumer = self._consumer()
        try:
            self._existing(topic, self._topic_names(consumer))
            low, high = self._watermarks(consumer, topic, partition)
            if not low <= offset < high:
                raise DeadLetterNotFoundError(
                    f"{ref}: no such record; {topic} partition {partition} holds offsets "
                    f"{low}..{high - 1}"
                    if high > low
                    else f"{ref}: the partition is empty"
                )
            consumer.assign([TopicPartition(topic, partition, offset)])
            message = self._next_message(consumer, ref)
            if message.offset() != offset:
                # A transaction marker or an aborted record sits there.
                raise DeadLetterNotFoundError(f"{ref}: no committed record at this offset")
            letter = self._parse(message)
            if isinstance(letter, str):
                raise DeadLetterNotFoundError(f"{ref} is not a dead letter: {letter}")
            return self._identified(letter)
        finally:
            consumer.close()

    def fetch_many(self, refs: Sequence[str]) -> Scan:
        """The dead letters at ``refs``, read through one consumer, in the order given.

        Only those records are fetched (a seek each), never the topics around them. A ref with
        no dead letter there any more (retention, a purge, not a dead letter) is passed over
        and named in ``skipped``.
        """
        scan = Scan(sorted({parse_ref(ref)[0] for ref in refs}))
        if not refs:
            return scan
        consumer = self._consumer()
        try:
            for ref in refs:
                topic, partition, offset = parse_ref(ref)
                consumer.assign([TopicPartition(topic, partition, offset)])
                try:
                    message = self._next_message(consumer, ref)
                except DeadLetterNotFoundError as exc:
                    scan.skipped.append(str(exc))
                    continue
                # Outside the partition's offsets the reset policy moves the read elsewhere.
                same = message.offset() == offset
                letter = self._parse(message) if same else "no committed record at this offset"
                if isinstance(letter, str):
                    scan.skipped.append(f"{ref}: {letter}")
                    continue
                scan.letters.append(self._identified(letter))
            return scan
        finally:
            consumer.close()

    def letters_from(
        self, topics: Sequence[str], start: Mapping[tuple[str, int], int]
    ) -> Iterator[DeadLetter]:
        """Dead letters of ``topics`` from the ``start`` offset of each partition.

        A partition not in ``start`` is read from its beginning; each to the end it had when
        reading started. Records that are not dead letters are passed over.
        """
        consumer = self._consumer()
        try:
            yield from self._read(consumer, Scan(list(topics)), start)
        finally:
            consumer.close()

    # -- internals ---------------------------------------------------------------------------

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer.create(
            self._settings,
            # librdkafka wants a group id even for assign(); nothing is ever committed to it.
            f"oncepipe-dlq-reader-{uuid.uuid4().hex[:12]}",
            {"enable.partition.eof": True, "auto.offset.reset": "earliest"},
        )

    @staticmethod
    def _topic_names(consumer: KafkaConsumer) -> set[str]:
        try:
            return set(consumer.list_topics(timeout=10).topics)
        except KafkaException as exc:
            raise broker_error(exc, "listing topics") from exc

    def _topics(self, consumer: KafkaConsumer, selection: Selection) -> list[str]:
        existing = self._topic_names(consumer)
        wanted: set[str] = set()
        for name in selection.dlq_topics:
            wanted.add(self._existing(name, existing))
        for name in selection.topics:
            if is_dlq_topic(name):
                wanted.add(self._existing(name, existing))
                continue
            named = (dlq_topic_for(name), f"{name}.DLT")
            own = [t for t in named if t in existing]
            if not own and name not in existing:
                # A typo would otherwise read every dead-letter topic and find nothing.
                raise ConfigError(
                    f"topic {name} does not exist, nor a dead-letter topic named after it "
                    f"({' or '.join(named)}); check the name, or leave out --topic to read "
                    "every dead-letter topic"
                )
            # No dead-letter topic named after it: its dead letters may sit in any of them.
            wanted.update(own or (t for t in existing if is_dlq_topic(t)))
        if not selection.topics and not selection.dlq_topics:
            wanted = {t for t in existing if is_dlq_topic(t)}
        return sorted(wanted)

    @staticmethod
    def _existing(name: str, existing: set[str]) -> str:
        if name not in existing:
            raise ConfigError(
                f"topic {name} does not exist; check the name (`oncepipe dlq list` without "
                "--topic reads every dead-letter topic)"
            )
        return name

    def _watermarks(self, consumer: KafkaConsumer, topic: str, partition: int) -> tuple[int, int]:
        try:
            return consumer.watermarks(topic, partition, timeout=10, cached=False)
        except KafkaException as exc:
            raise broker_error(exc, f"reading the watermarks of {topic}[{partition}]") from exc

    def _read(
        self,
        consumer: KafkaConsumer,
        scan: Scan,
        start_at: Mapping[tuple[str, int], int] | None = None,
    ) -> Iterator[DeadLetter]:
        end: dict[tuple[str, int], int] = {}
        start: list[TopicPartition] = []
        metadata = consumer.list_topics(timeout=10)
        for topic in scan.topics:
            for partition in sorted(metadata.topics[topic].partitions):
                low, high = self._watermarks(consumer, topic, partition)
                low = max(low, (start_at or {}).get((topic, partition), low))
                if high > low:
                    end[topic, partition] = high
                    start.append(TopicPartition(topic, partition, low))
        if not start:
            return
        consumer.assign(start)
        idle_until = time.monotonic() + self._idle_timeout_s
        while end:
            if time.monotonic() > idle_until:
                raise OncepipeError(
                    f"reading dead letters stalled for {self._idle_timeout_s:.0f}s with "
                    f"{len(end)} partition(s) unfinished; is the broker reachable?"
                )
            for message in consumer.consume(1000, timeout=0.5):
                idle_until = time.monotonic() + self._idle_timeout_s
                where = (message.topic() or "", message.partition() or 0)
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # With read_committed the end may be an open transaction's start.
                        end.pop(where, None)
                        continue
                    raise broker_error(error, f"reading {where[0]}[{where[1]}]")
                stop = end.get(where)
                offset = message.offset() or 0
                if stop is None or offset >= stop:
                    end.pop(where, None)
                    continue
                if offset >= stop - 1:
                    end.pop(where)
                letter = self._parse(message)
                if isinstance(letter, str):
                    scan.skipped.append(letter)
                    continue
                yield self._identified(letter)

    def _identified(self, letter: DeadLetter) -> DeadLetter:
        """``letter`` with the event id and type of its value when its headers lack them."""
        if (letter.event_id and letter.event_type) or not letter.value:
            return letter
        if self._codec is None:
            self._codec = lenient_codec(self._settings)
        payload = decode_payload(self._codec, letter.value)
        if payload.event_id is None:
            return letter
        return replace(
            letter,
            event_id=letter.event_id or payload.event_id,
            event_type=letter.event_type or payload.event_type,
        )

    def _next_message(self, consumer: KafkaConsumer, ref: str) -> Record:
        deadline = time.monotonic() + self._idle_timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return message
            if error.code() == KafkaError._PARTITION_EOF:
                raise DeadLetterNotFoundError(f"{ref}: no committed record at this offset")
            raise broker_error(error, f"reading {ref}")
        raise OncepipeError(f"reading {ref} timed out after {self._idle_timeout_s:.0f}s")

    @staticmethod
    def _parse(message: Record) -> DeadLetter | str:
        """The dead letter in ``message``, or why it is not one.

        A record whose headers the client cannot read (a header name that is not UTF-8 makes
        ``headers()`` raise) is still shown, as an ``unreadable`` dead letter.
        """
        topic, partition, offset = message.topic() or "", message.partition(), message.offset()
        kind, timestamp = message.timestamp()
        try:
            headers = message_headers(message)
        except HeadersUnreadableError as exc:
            log.warning("dead letter headers unreadable", topic=topic, partition=partition,
                        offset=offset, error=str(exc))  # fmt: skip
            return unreadable_dead_letter(
                str(exc),
                message.key(),
                message.value(),
                dlq_topic=topic,
                dlq_partition=partition or 0,
                dlq_offset=offset or 0,
                dlq_timestamp_ms=timestamp if kind else None,
            )
        try:
            return parse_dead_letter(
                headers,
                message.key(),
                message.value(),
                dlq_topic=topic,
                dlq_partition=partition or 0,
                dlq_offset=offset or 0,
                dlq_timestamp_ms=timestamp if kind else None,
            )
        except DeadLetterFormatError as exc:
            log.warning("not a dead letter", topic=topic, partition=partition, offset=offset)
            return f"{topic}:{partition}:{offset}: {exc}"
