"""Dead letters read back: oncepipe's own, and Spring, Connect and Streams ones.

oncepipe writes its dead letters with the headers of ``consumers.deadletter_headers`` (the
table is there); this module reads those and the three other dialects into one ``DeadLetter``.

A record on a dead-letter topic whose headers the client cannot read is still shown: as a dead
letter of dialect ``unreadable`` (no source known, so a replay needs ``--to``).

A replayed record keeps key, value and the original headers, loses every dead-letter header
of the four dialects, and gains ``replay_of`` (``<dlq-topic>:<partition>:<offset>``) and
``replay_count``.

Public names: ``DeadLetter``, ``DeadLetterFormatError``, ``Dialect``, ``DIALECTS``,
``DEAD_LETTER_PREFIXES``, ``REPLAY_OF``, ``REPLAY_COUNT``, ``MAX_REPLAY_COUNT``,
``parse_dead_letter``, ``unreadable_dead_letter``, ``replay_headers``, ``is_dead_letter_header``,
``format_ref``, ``parse_ref``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from operator import itemgetter
from typing import Literal

from consumers.deadletter_headers import (
    ATTEMPTS,
    CONSUMER_GROUP,
    ERROR_CLASS,
    ERROR_MESSAGE,
    FIRST_FAILURE,
    HEADERS_UNREADABLE,
    LAST_FAILURE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    PREFIX,
    RETRY_ATTEMPTS,
    STACKTRACE,
    STAGE,
    DeadLetterFormatError,
)
from oncepipe.kafka import RawHeaders

__all__ = [
    "DEAD_LETTER_PREFIXES",
    "DIALECTS",
    "MAX_REPLAY_COUNT",
    "REPLAY_COUNT",
    "REPLAY_OF",
    "DeadLetter",
    "DeadLetterFormatError",
    "Dialect",
    "format_ref",
    "is_dead_letter_header",
    "parse_dead_letter",
    "parse_ref",
    "replay_headers",
    "unreadable_dead_letter",
]

REPLAY_OF = "replay_of"
REPLAY_COUNT = "replay_count"
_REPLAY_NAMES = frozenset((REPLAY_OF, REPLAY_COUNT))

# The dead-letter namespaces of the four dialects; a replay strips all of them.
_SPRING = "kafka_dlt-"
_CONNECT = "__connect.errors."
_STREAMS = "__streams.errors."
DEAD_LETTER_PREFIXES = (PREFIX, _SPRING, _CONNECT, _STREAMS)

Dialect = Literal["oncepipe", "spring", "connect", "streams", "unreadable"]
DIALECTS: tuple[Dialect, ...] = ("oncepipe", "spring", "connect", "streams")
"""The dialects told apart by their headers (``unreadable``: no headers could be read)."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter, whatever wrote it: where it sits, where it came from, why it failed."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    dialect: Dialect
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    source_timestamp: datetime | None
    consumer_group: str | None
    stage: str | None
    error_class: str
    error_message: str
    attempts: int | None
    first_failure: datetime | None
    last_failure: datetime | None
    stacktrace: str
    event_id: str | None
    event_type: str | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    """The original record's headers (every dead-letter header removed), bytes as they were."""
    dlq_timestamp: datetime | None = None
    extras: Mapping[str, str] = field(default_factory=dict)
    """Dialect-specific context: connector name, task id, raw stage, cause class, ..."""

    @cached_property
    def ref(self) -> str:
        """``<dlq-topic>:<partition>:<offset>``, how commands and ``replay_of`` name it."""
        # Cached: a replay names each letter several times (routing, headers, outcome, order).
        return format_ref(self.dlq_topic, self.dlq_partition, self.dlq_offset)

    @property
    def failed_at(self) -> datetime | None:
        """The last failure, else when the dead letter was written."""
        return self.last_failure or self.dlq_timestamp

    @property
    def replay_count(self) -> int:
        """How often the original record had already been replayed (its ``replay_count``)."""
        if REPLAY_COUNT not in map(_name, self.headers):  # the usual case, at C speed
            return 0
        for name, raw in self.headers:
            if name == REPLAY_COUNT and raw is not None:
                text = raw.decode("utf-8", "replace").strip()
                if not _DIGITS.fullmatch(text):
                    return 0
                # Length first: int() refuses over 4,300 digits, and the next count must fit
                # the replay ledger's integer column.
                if len(text) > _COUNT_DIGITS:
                    return MAX_REPLAY_COUNT
                return min(int(text), MAX_REPLAY_COUNT)
        return 0


# ASCII digits only: str.isdigit() also accepts digits such as "²" that int() refuses.
_DIGITS = re.compile(r"[0-9]+")
MAX_REPLAY_COUNT = 2**31 - 2
"""The highest ``replay_count`` read from a header: one more still fits a PostgreSQL integer."""
_COUNT_DIGITS = len(str(MAX_REPLAY_COUNT))


def format_ref(topic: str, partition: int, offset: int) -> str:
    """``<topic>:<partition>:<offset>``."""
    return f"{topic}:{partition}:{offset}"


def parse_ref(ref: str) -> tuple[str, int, int]:
    """Split ``<topic>:<partition>:<offset>`` (Kafka topic names cannot contain ``:``)."""
    topic, _, rest = ref.partition(":")
    partition, _, offset = rest.partition(":")
    if not topic or not _DIGITS.fullmatch(partition) or not _DIGITS.fullmatch(offset):
        raise DeadLetterFormatError(
            f"{_shown(ref)} is not a dead-letter reference; write "
            "<dlq-topic>:<partition>:<offset>, e.g. events.click.dlq:0:42"
        )
    return topic, int(partition), int(offset)


def is_dead_letter_header(name: str) -> bool:
    """True for a header any of the four dialects writes when it dead-letters a record."""
    return name.startswith(DEAD_LETTER_PREFIXES)


# -- replaying -------------------------------------------------------------------------------


def replay_headers(dead_letter: DeadLetter, replay_count: int) -> list[tuple[str, bytes | None]]:
    """The headers of a replay: the original ones as they were, ``replay_of``, ``replay_count``."""
    headers = dead_letter.headers
    # Per record of a replay: the usual record (never replayed before) takes the C-level
    # path, a copy with the two headers appended; a replayed one drops its old pair first.
    if _REPLAY_NAMES.isdisjoint(map(_name, headers)):
        return [
            *headers,
            (REPLAY_OF, dead_letter.ref.encode()),
            (REPLAY_COUNT, b"%d" % replay_count),
        ]
    kept = [header for header in headers if header[0] not in _REPLAY_NAMES]
    kept.append((REPLAY_OF, dead_letter.ref.encode()))
    kept.append((REPLAY_COUNT, b"%d" % replay_count))
    return kept


_name = itemgetter(0)


# -- reading ---------------------------------------------------------------------------------


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode("utf-8") if isinstance(raw, str) else raw


# A hostile header can be megabytes long: refusals quote only its start.
_SHOWN_CHARS = 80


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def _decimal(raw: bytes | None, name: str) -> int | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DeadLetterFormatError(
            f"header {name}={_shown(text)} is not a decimal number"
        ) from None


# Decimal text as other tools write it; "1234" and "12345678" are 4 and 8 bytes long too.
_DECIMAL_TEXT = re.compile(rb"\s*-?[0-9]+\s*")


def _spring_number(raw: bytes | None, name: str) -> int | None:
    """Spring's int32 partition or int64 offset/timestamp (big-endian binary), or decimal text.

    Bytes that are all ASCII digits are decimal text whatever their length: read as binary
    they would be at least 0x30303030 (808 million) as an int32 and 0x3030303030303030
    (3.5e18) as an int64, which no partition, offset or millisecond timestamp comes near.
    """
    if raw is None:
        return None
    if len(raw) in {4, 8} and not _DECIMAL_TEXT.fullmatch(raw):
        return int.from_bytes(raw, "big", signed=True)
    return _decimal(raw, name)


def _moment(raw: bytes | None, name: str) -> datetime | None:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DeadLetterFormatError(
            f"header {name}={_shown(text)} is not an ISO-8601 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_millis(ms: int | None, name: str) -> datetime | None:
    """A header's milliseconds since the epoch; past year 9999 is refused, naming the header."""
    try:
        return _record_time(ms)
    except (OverflowError, ValueError, OSError):
        raise DeadLetterFormatError(
            f"header {name}={ms} is not a time: milliseconds since the epoch past the year 9999"
        ) from None


def _record_time(ms: int | None) -> datetime | None:
    return None if ms is None or ms < 0 else datetime.fromtimestamp(ms / 1000, UTC)


def _dlq_time(ms: int | None) -> datetime | None:
    """The dead letter's own Kafka timestamp; a nonsense one is unknown, not a refusal.

    Any producer can set it, so it is no reason to refuse headers that are fine.
    """
    try:
        return _record_time(ms)
    except (OverflowError, ValueError, OSError):
        return None


_DECODE_HINT = re.compile(r"(?i)(de)?serializ|converter|SchemaError|Avro|Json")


def _guess_stage(*class_names: str | None) -> str:
    """Spring and Streams do not say where it failed; (de)serialization errors mean decode."""
    return "decode" if any(c and _DECODE_HINT.search(c) for c in class_names) else "handle"


_CONNECT_STAGES = {
    "KEY_CONVERTER": "decode",
    "VALUE_CONVERTER": "decode",
    "HEADER_CONVERTER": "decode",
    "TRANSFORMATION": "validate",
    "TASK_PUT": "handle",
    "TASK_POLL": "handle",
    "KAFKA_PRODUCE": "handle",
    "KAFKA_CONSUME": "handle",
}


def _dialect_of(names: set[str]) -> Dialect:
    for dialect, prefix in zip(DIALECTS, DEAD_LETTER_PREFIXES, strict=True):
        if any(name.startswith(prefix) for name in names):
            return dialect
    raise DeadLetterFormatError(
        "the record has no dead-letter headers (dlq.*, kafka_dlt-*, __connect.errors.*, "
        "__streams.errors.*); it was not written by a dead-letter writer oncepipe knows"
    )


@dataclass
class _Found:
    """The headers of one record by name (the last value wins when a name repeats)."""

    values: dict[str, bytes | None]

    def text(self, *names: str) -> str | None:
        for name in names:
            raw = self.values.get(name)
            if raw is not None:
                return raw.decode("utf-8", "replace")
        return None

    def raw(self, name: str) -> bytes | None:
        return self.values.get(name)


@dataclass
class _Fields:
    """What one dialect says about the failure."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp: datetime | None = None
    group: str | None = None
    stage: str | None = None
    error_class: str | None = None
    message: str | None = None
    stacktrace: str | None = None
    attempts: int | None = None
    first: datetime | None = None
    last: datetime | None = None
    extras: dict[str, str] = field(default_factory=dict)


def _read_oncepipe(found: _Found, _dlq_timestamp_ms: int | None) -> _Fields:
    unreadable = found.text(HEADERS_UNREADABLE)
    return _Fields(
        topic=found.text(ORIGINAL_TOPIC),
        partition=_decimal(found.raw(ORIGINAL_PARTITION), ORIGINAL_PARTITION),
        offset=_decimal(found.raw(ORIGINAL_OFFSET), ORIGINAL_OFFSET),
        timestamp=_from_millis(
            _decimal(found.raw(ORIGINAL_TIMESTAMP), ORIGINAL_TIMESTAMP), ORIGINAL_TIMESTAMP
        ),
        group=found.text(CONSUMER_GROUP),
        stage=found.text(STAGE),
        error_class=found.text(ERROR_CLASS),
        message=found.text(ERROR_MESSAGE),
        stacktrace=found.text(STACKTRACE),
        attempts=_decimal(found.raw(ATTEMPTS), ATTEMPTS),
        first=_moment(found.raw(FIRST_FAILURE), FIRST_FAILURE),
        last=_moment(found.raw(LAST_FAILURE), LAST_FAILURE),
        extras={
            name: value
            for name, value in (
                ("headers_unreadable", unreadable),
                ("retry.attempts", found.text(RETRY_ATTEMPTS)),
            )
            if value is not None
        },
    )


def _read_spring(found: _Found, _dlq_timestamp_ms: int | None) -> _Fields:
    s = _SPRING
    error_class = found.text(s + "exception-fqcn", s + "key-exception-fqcn")
    cause = found.text(s + "exception-cause-fqcn")
    key_failed = found.raw(s + "key-exception-fqcn") is not None
    extras = {
        name: value
        for name in ("exception-cause-fqcn", "original-timestamp-type")
        if (value := found.text(s + name)) is not None
    }
    return _Fields(
        topic=found.text(s + "original-topic"),
        partition=_spring_number(found.raw(s + "original-partition"), s + "original-partition"),
        offset=_spring_number(found.raw(s + "original-offset"), s + "original-offset"),
        timestamp=_from_millis(
            _spring_number(found.raw(s + "original-timestamp"), s + "original-timestamp"),
            s + "original-timestamp",
        ),
        group=found.text(s + "original-consumer-group"),
        stage="decode" if key_failed else _guess_stage(error_class, cause),
        error_class=error_class,
        message=found.text(s + "exception-message", s + "key-exception-message"),
        stacktrace=found.text(s + "exception-stacktrace", s + "key-exception-stacktrace"),
        extras=extras,
    )


def _read_connect(found: _Found, _dlq_timestamp_ms: int | None) -> _Fields:
    c = _CONNECT
    extras = {
        name: value
        for name in ("connector.name", "task.id", "stage", "class.name")
        if (value := found.text(c + name)) is not None
    }
    raw_stage = extras.get("stage")
    connector = extras.get("connector.name")
    return _Fields(
        topic=found.text(c + "topic"),
        partition=_decimal(found.raw(c + "partition"), c + "partition"),
        offset=_decimal(found.raw(c + "offset"), c + "offset"),
        # A sink connector consumes as the group connect-<connector name>.
        group=f"connect-{connector}" if connector else None,
        stage=_CONNECT_STAGES.get(raw_stage or "", raw_stage),
        error_class=found.text(c + "exception.class.name"),
        message=found.text(c + "exception.message"),
        stacktrace=found.text(c + "exception.stacktrace"),
        extras=extras,
    )


def _read_streams(found: _Found, dlq_timestamp_ms: int | None) -> _Fields:
    s = _STREAMS
    # Kafka Streams (KIP-1034) writes .exception, .message and .stacktrace; some write-ups
    # name them .exception.message and .exception.stacktrace, so read those too.
    error_class = found.text(s + "exception", s + "exception.class.name")
    return _Fields(
        topic=found.text(s + "topic"),
        partition=_decimal(found.raw(s + "partition"), s + "partition"),
        offset=_decimal(found.raw(s + "offset"), s + "offset"),
        # Streams gives the dead letter the original record's timestamp.
        timestamp=_dlq_time(dlq_timestamp_ms),
        stage=_guess_stage(error_class),
        error_class=error_class,
        message=found.text(s + "message", s + "exception.message"),
        stacktrace=found.text(s + "stacktrace", s + "exception.stacktrace"),
    )


_READERS = {
    "oncepipe": _read_oncepipe,
    "spring": _read_spring,
    "connect": _read_connect,
    "streams": _read_streams,
}


def parse_dead_letter(
    headers: RawHeaders | Mapping[str, str | bytes | None] | None,
    key: bytes | None,
    value: bytes | None,
    *,
    dlq_topic: str,
    dlq_partition: int,
    dlq_offset: int,
    dlq_timestamp_ms: int | None = None,
) -> DeadLetter:
    """Read a dead letter of any of the four dialects; raises ``DeadLetterFormatError``."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    pairs = [(name, _as_bytes(raw)) for name, raw in items]
    found = _Found(dict(pairs))
    original = tuple((n, raw) for n, raw in pairs if not is_dead_letter_header(n))
    dialect = _dialect_of(set(found.values))
    fields = _READERS[dialect](found, dlq_timestamp_ms)
    record = _Record(dlq_topic, dlq_partition, dlq_offset, dlq_timestamp_ms, key, value)
    return _dead_letter(record, dialect, fields, original)


def unreadable_dead_letter(
    reason: str,
    key: bytes | None,
    value: bytes | None,
    *,
    dlq_topic: str,
    dlq_partition: int,
    dlq_offset: int,
    dlq_timestamp_ms: int | None = None,
) -> DeadLetter:
    """A record of a dead-letter topic whose headers the client cannot read (``reason``).

    Nothing says where it came from or why it failed; key and value are as they are, so it
    can still be listed, shown and replayed (with ``--to``).
    """
    fields = _Fields(
        error_class="HeadersUnreadable",
        message=f"the record's headers cannot be read ({reason}); a name is not UTF-8?",
        extras={"headers_unreadable": reason},
    )
    record = _Record(dlq_topic, dlq_partition, dlq_offset, dlq_timestamp_ms, key, value)
    return _dead_letter(record, "unreadable", fields, ())


@dataclass(frozen=True)
class _Record:
    """The record on the dead-letter topic: where it sits, its timestamp, key and value."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


def _dead_letter(
    record: _Record,
    dialect: Dialect,
    fields: _Fields,
    original: tuple[tuple[str, bytes | None], ...],
) -> DeadLetter:
    """The one place a ``DeadLetter`` is built: what a dialect said, the record, its place."""
    return DeadLetter(
        dlq_topic=record.topic,
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        dialect=dialect,
        source_topic=fields.topic or None,
        source_partition=fields.partition,
        source_offset=fields.offset,
        source_timestamp=fields.timestamp,
        consumer_group=fields.group or None,
        stage=fields.stage or None,
        error_class=fields.error_class or "",
        error_message=fields.message or "",
        attempts=fields.attempts,
        first_failure=fields.first,
        last_failure=fields.last,
        stacktrace=fields.stacktrace or "",
        event_id=_original_text(original, "event_id"),
        event_type=_original_text(original, "event_type"),
        key=record.key,
        value=record.value,
        headers=original,
        dlq_timestamp=_dlq_time(record.timestamp_ms),
        extras=fields.extras,
    )


def _original_text(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for header, raw in headers:
        if header == name and raw:
            return raw.decode("utf-8", "replace")
    return None
