"""The dead-letter header contract: what oncepipe writes, and the four dialects it reads."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from consumers import deadletter_headers as w
from consumers.deadletter_headers import Failure, dead_letter_headers
from consumers.dlq.headers import (
    DeadLetter,
    DeadLetterFormatError,
    format_ref,
    is_dead_letter_header,
    parse_dead_letter,
    parse_ref,
    replay_headers,
)

FIRST = datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
LAST = FIRST + timedelta(seconds=5)
EVENT_ID = "6f1c2a52-2f4e-4c55-9d2b-0d8a4c1e7b11"
ORIGINAL = [
    ("event_id", EVENT_ID.encode()),
    ("event_type", b"ClickEvent"),
    ("schema_fingerprint", b"0123456789abcdef"),
]


def parse(
    headers: Sequence[tuple[str, bytes | None]],
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    *,
    dlq_timestamp_ms: int | None = None,
) -> DeadLetter:
    return parse_dead_letter(
        headers,
        key,
        value,
        dlq_topic="events.click.dlq",
        dlq_partition=0,
        dlq_offset=7,
        dlq_timestamp_ms=dlq_timestamp_ms,
    )


def oncepipe_headers(**overrides: object) -> list[tuple[str, str | bytes | None]]:
    options: dict[str, object] = {
        "topic": "events.click",
        "partition": 3,
        "offset": 41,
        "timestamp_ms": 1_740_830_400_000,
        "consumer_group": "clicks",
        "stage": "validate",
        "failure": Failure("schemas.errors.ValidationFailedError", "user_id: too short", "tb"),
        "attempts": 1,
        "first_failure": FIRST,
        "last_failure": LAST,
        "original_headers": ORIGINAL,
        **overrides,
    }
    return dead_letter_headers(**options)  # type: ignore[arg-type]


def as_raw(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes | None]]:
    """Headers as a consumer reads them back: bytes (or None)."""
    return [(n, v.encode() if isinstance(v, str) else v) for n, v in headers]


def written(headers: list[tuple[str, str | bytes | None]]) -> dict[str, str]:
    """The ``dlq.*`` headers the builder wrote (plain strings)."""
    return {n: v for n, v in headers if n.startswith("dlq.") and isinstance(v, str)}


def test_header_names_are_the_documented_plain_dlq_names() -> None:
    assert w.ONCEPIPE_HEADERS == (
        "dlq.original.topic",
        "dlq.original.partition",
        "dlq.original.offset",
        "dlq.original.timestamp",
        "dlq.consumer.group",
        "dlq.stage",
        "dlq.error.class",
        "dlq.error.message",
        "dlq.attempts",
        "dlq.first.failure",
        "dlq.last.failure",
        "dlq.stacktrace",
    )


def test_builder_writes_every_field_as_a_plain_string_after_the_original_headers() -> None:
    headers = oncepipe_headers()
    assert headers[:3] == ORIGINAL
    written = dict(headers[3:])
    assert written == {
        "dlq.original.topic": "events.click",
        "dlq.original.partition": "3",
        "dlq.original.offset": "41",
        "dlq.original.timestamp": "1740830400000",
        "dlq.consumer.group": "clicks",
        "dlq.stage": "validate",
        "dlq.error.class": "schemas.errors.ValidationFailedError",
        "dlq.error.message": "user_id: too short",
        "dlq.attempts": "1",
        "dlq.first.failure": "2025-03-01T12:00:00.123+00:00",
        "dlq.last.failure": "2025-03-01T12:00:05.123+00:00",
        "dlq.stacktrace": "tb",
    }
    assert all(isinstance(value, str) for _, value in headers[3:])


def test_builder_takes_an_exception_with_its_qualified_class_and_traceback() -> None:
    try:
        raise KeyError("no handler for ClickEvent")
    except KeyError as exc:
        headers = written(oncepipe_headers(failure=exc, stage="handle"))
    assert headers["dlq.error.class"] == "KeyError"
    assert headers["dlq.error.message"] == "'no handler for ClickEvent'"
    assert headers["dlq.stacktrace"].startswith("Traceback (most recent call last)")
    assert "KeyError" in headers["dlq.stacktrace"]


def test_builder_bounds_stack_trace_and_message_keeping_both_ends_of_the_trace() -> None:
    trace = "Traceback (most recent call last)\n" + "  frame\n" * 5000 + "ValueError: boom\n"
    failure = Failure("ValueError", "é" * 10_000, trace)
    headers = written(oncepipe_headers(failure=failure))
    assert len(headers["dlq.stacktrace"].encode()) <= w.MAX_STACKTRACE_BYTES
    assert headers["dlq.stacktrace"].startswith("Traceback")
    assert headers["dlq.stacktrace"].endswith("ValueError: boom\n")
    assert "bytes cut" in headers["dlq.stacktrace"]
    assert len(headers["dlq.error.message"].encode()) <= w.MAX_MESSAGE_BYTES
    assert headers["dlq.error.message"].startswith("éé")


def test_builder_drops_stale_dlq_headers_of_the_original_record() -> None:
    stale = [*ORIGINAL, ("dlq.stage", b"decode"), ("replay_of", b"events.click.dlq:0:1")]
    headers = oncepipe_headers(original_headers=stale)
    assert [value for name, value in headers if name == "dlq.stage"] == ["validate"]
    assert ("replay_of", b"events.click.dlq:0:1") in headers


def test_builder_keeps_original_header_bytes_and_nulls_as_they_were() -> None:
    hostile = [("nul", b"a\x00b"), ("bad", b"\xff\xfe\x80"), ("none", None), ("empty", b"")]
    headers = oncepipe_headers(original_headers=hostile)
    assert headers[:4] == hostile
    letter = parse(as_raw(headers))
    assert letter.headers == tuple(hostile)
    replayed = replay_headers(letter, 1)
    assert replayed[:4] == hostile


def test_builder_marks_headers_the_client_could_not_read() -> None:
    headers = oncepipe_headers(original_headers=[], headers_unreadable="UnicodeDecodeError: x")
    assert ("dlq.headers.unreadable", "UnicodeDecodeError: x") in headers
    letter = parse(as_raw(headers))
    assert letter.extras["headers_unreadable"] == "UnicodeDecodeError: x"
    assert letter.headers == ()
    assert replay_headers(letter, 1) == [
        ("replay_of", b"events.click.dlq:0:7"),
        ("replay_count", b"1"),
    ]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"stage": "parse"}, "stage"),
        ({"attempts": 0}, "attempts"),
        ({"first_failure": datetime(2025, 1, 1)}, "time zone"),  # naive on purpose
    ],
)
def test_builder_refuses_values_outside_the_contract(
    overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        oncepipe_headers(**overrides)


def test_oncepipe_dead_letter_round_trips_through_the_parser() -> None:
    built = oncepipe_headers()
    letter = parse(as_raw(built), b"user-1", b"\xc3\x01body")
    assert letter.dialect == "oncepipe"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "events.click",
        3,
        41,
    )
    assert letter.source_timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert letter.consumer_group == "clicks"
    assert letter.stage == "validate"
    assert letter.error_class == "schemas.errors.ValidationFailedError"
    assert letter.error_message == "user_id: too short"
    assert letter.attempts == 1
    assert (letter.first_failure, letter.last_failure) == (FIRST, LAST)
    assert letter.failed_at == LAST
    assert letter.stacktrace == "tb"
    assert (letter.event_id, letter.event_type) == (EVENT_ID, "ClickEvent")
    assert (letter.key, letter.value) == (b"user-1", b"\xc3\x01body")
    assert letter.headers == tuple(ORIGINAL)
    assert letter.ref == "events.click.dlq:0:7"


def test_spring_dead_letter_numbers_are_big_endian_binary() -> None:
    headers = [
        *ORIGINAL,
        ("kafka_dlt-original-topic", b"events.click"),
        ("kafka_dlt-original-partition", struct.pack(">i", 2)),
        ("kafka_dlt-original-offset", struct.pack(">q", 300_000_000_000)),
        ("kafka_dlt-original-timestamp", struct.pack(">q", 1_740_830_400_000)),
        ("kafka_dlt-original-timestamp-type", b"CreateTime"),
        ("kafka_dlt-original-consumer-group", b"spring-clicks"),
        ("kafka_dlt-exception-fqcn", b"org.springframework.kafka.support.serializer.X"),
        (
            "kafka_dlt-exception-cause-fqcn",
            b"org.apache.kafka.common.errors.SerializationException",
        ),
        ("kafka_dlt-exception-message", b"failed to deserialize"),
        ("kafka_dlt-exception-stacktrace", b"org.apache...\n\tat ..."),
    ]
    letter = parse(headers, b"k", b"v", dlq_timestamp_ms=1_740_830_500_000)
    assert letter.dialect == "spring"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "events.click",
        2,
        300_000_000_000,
    )
    assert letter.source_timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert letter.consumer_group == "spring-clicks"
    assert letter.stage == "decode"
    assert letter.error_class == "org.springframework.kafka.support.serializer.X"
    assert letter.error_message == "failed to deserialize"
    assert letter.stacktrace.startswith("org.apache")
    assert letter.failed_at == datetime(2025, 3, 1, 12, 1, 40, tzinfo=UTC)
    assert letter.event_id == EVENT_ID
    assert letter.extras["original-timestamp-type"] == "CreateTime"


def test_spring_listener_failures_are_the_handle_stage() -> None:
    headers = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", struct.pack(">i", 0)),
        ("kafka_dlt-original-offset", struct.pack(">q", 5)),
        ("kafka_dlt-exception-fqcn", b"org.springframework.kafka.ListenerExecutionFailedException"),
    ]
    assert parse(headers, None, b"v").stage == "handle"


def spring_coordinates(
    partition: bytes, offset: bytes, timestamp: bytes | None = None
) -> tuple[int | None, int | None, datetime | None]:
    headers = [
        ("kafka_dlt-original-topic", b"orders"),
        ("kafka_dlt-original-partition", partition),
        ("kafka_dlt-original-offset", offset),
        ("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException"),
    ]
    if timestamp is not None:
        headers.append(("kafka_dlt-original-timestamp", timestamp))
    letter = parse(headers)
    return letter.source_partition, letter.source_offset, letter.source_timestamp


@pytest.mark.parametrize(
    ("partition", "offset", "expected"),
    [
        (b"1234", b"12345678", (1234, 12_345_678)),
        (b"7", b"1234", (7, 1234)),
        (b"0012", b"00000042", (12, 42)),
        (b"  12", b"-1", (12, -1)),
    ],
)
def test_spring_decimal_text_of_4_or_8_characters_is_read_as_decimal(
    partition: bytes, offset: bytes, expected: tuple[int, int]
) -> None:
    assert spring_coordinates(partition, offset)[:2] == expected


def test_spring_binary_numbers_stay_binary_beside_decimal_text() -> None:
    # 0x31 is the byte of "1": a binary number may hold digit bytes, not only digit bytes.
    assert spring_coordinates(struct.pack(">i", 0x31), struct.pack(">q", 0x3132_3334)) == (
        0x31,
        0x3132_3334,
        None,
    )
    assert spring_coordinates(b"3", b"99", b"1740830400000")[2] == datetime(
        2025, 3, 1, 12, 0, tzinfo=UTC
    )


def test_spring_numbers_that_are_neither_binary_nor_decimal_are_refused() -> None:
    with pytest.raises(DeadLetterFormatError, match="offset"):
        spring_coordinates(struct.pack(">i", 1), b"12x")


def test_connect_dead_letter_headers_are_strings_with_a_stage() -> None:
    headers = [
        *ORIGINAL,
        ("__connect.errors.topic", b"events.click"),
        ("__connect.errors.partition", b"4"),
        ("__connect.errors.offset", b"99"),
        ("__connect.errors.connector.name", b"pg-sink"),
        ("__connect.errors.task.id", b"0"),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"io.confluent.connect.avro.AvroConverter"),
        ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
        ("__connect.errors.exception.message", b"Failed to deserialize data"),
        ("__connect.errors.exception.stacktrace", b"org.apache.kafka.connect.errors..."),
    ]
    letter = parse(headers, b"k", b"v")
    assert letter.dialect == "connect"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "events.click",
        4,
        99,
    )
    assert letter.stage == "decode"
    assert letter.consumer_group == "connect-pg-sink"
    assert letter.error_class == "org.apache.kafka.connect.errors.DataException"
    assert letter.error_message == "Failed to deserialize data"
    assert letter.extras["stage"] == "VALUE_CONVERTER"
    assert letter.extras["task.id"] == "0"
    assert letter.event_id == EVENT_ID


def test_streams_dead_letter_headers_follow_kip_1034() -> None:
    headers = [
        *ORIGINAL,
        ("__streams.errors.exception", b"org.apache.kafka.common.errors.SerializationException"),
        ("__streams.errors.message", b"Size of data received is not 4"),
        ("__streams.errors.stacktrace", b"org.apache.kafka.common.errors..."),
        ("__streams.errors.topic", b"events.click"),
        ("__streams.errors.partition", b"1"),
        ("__streams.errors.offset", b"12"),
    ]
    letter = parse(headers, b"k", b"v", dlq_timestamp_ms=1_740_830_400_000)
    assert letter.dialect == "streams"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "events.click",
        1,
        12,
    )
    assert letter.source_timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert letter.stage == "decode"
    assert letter.error_class == "org.apache.kafka.common.errors.SerializationException"
    assert letter.error_message == "Size of data received is not 4"
    assert letter.stacktrace.startswith("org.apache")


def test_record_without_dead_letter_headers_is_refused() -> None:
    with pytest.raises(DeadLetterFormatError, match="no dead-letter headers"):
        parse(ORIGINAL, b"k", b"v")


def test_malformed_number_is_refused_with_the_header_name() -> None:
    headers = as_raw(oncepipe_headers())
    headers = [(n, b"x1" if n == "dlq.original.offset" else v) for n, v in headers]
    with pytest.raises(DeadLetterFormatError, match=r"dlq\.original\.offset"):
        parse(headers, b"k", b"v")


@pytest.mark.parametrize(
    "name",
    [
        "dlq.stage",
        "kafka_dlt-original-topic",
        "kafka_dlt-key-exception-message",
        "__connect.errors.topic",
        "__streams.errors.exception",
    ],
)
def test_every_dialects_headers_count_as_dead_letter_headers(name: str) -> None:
    assert is_dead_letter_header(name)


def test_replay_keeps_original_headers_strips_dead_letter_ones_and_adds_replay_ones() -> None:
    headers = [
        *ORIGINAL,
        ("replay_of", b"events.click.dlq:0:1"),
        ("replay_count", b"1"),
        ("kafka_dlt-original-topic", b"events.click"),
        ("__connect.errors.topic", b"events.click"),
        ("__streams.errors.topic", b"events.click"),
        *as_raw(oncepipe_headers(original_headers=[])),
    ]
    letter = parse(headers, b"k", b"v")
    assert letter.replay_count == 1
    assert replay_headers(letter, letter.replay_count + 1) == [
        *ORIGINAL,
        ("replay_of", b"events.click.dlq:0:7"),
        ("replay_count", b"2"),
    ]


def test_refs_round_trip_and_bad_ones_say_the_format() -> None:
    assert parse_ref(format_ref("events.click.dlq", 2, 30)) == ("events.click.dlq", 2, 30)
    with pytest.raises(DeadLetterFormatError, match="<dlq-topic>:<partition>:<offset>"):
        parse_ref("events.click.dlq:2")
