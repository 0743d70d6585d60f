"""Record sizes as librdkafka counts them, dead letters fitted under a limit, partitions chosen."""

from __future__ import annotations

import zlib

import pytest

from oncepipe.kafka import KafkaException, create_producer
from oncepipe.settings import Settings
from producers.partitioner import choose_partition, key_partition
from producers.producer import EventProducer, OutgoingRecord
from producers.recordsize import (
    TRIMMED,
    HeaderValue,
    fit_dead_letter,
    record_size,
    surely_fits,
)
from producers.settings import ProducerSettings

LIMIT = 50_000
ORIGINAL: list[tuple[str, HeaderValue]] = [("event_id", "e-1"), ("blob", b"\x00\xff" * 500)]
CONTEXT: list[tuple[str, HeaderValue]] = [
    ("dlq.stage", "decode"),
    ("dlq.error.message", "m" * 4000),
    ("dlq.stacktrace", "s" * 8000),
]


def local_producer(limit: int) -> object:
    # Nothing listens on port 1: produce() only checks and queues, which is what is tested.
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    return create_producer(settings, {"message.max.bytes": limit, "linger.ms": 60_000})


@pytest.mark.parametrize("headers", [[], ORIGINAL, ORIGINAL + CONTEXT, [("n", None)] * 300])
def test_a_record_whose_counted_size_fits_is_accepted_by_the_client(
    headers: list[tuple[str, HeaderValue]],
) -> None:
    producer = local_producer(LIMIT)
    value = b"v" * (LIMIT - record_size(b"key", b"", headers))
    assert record_size(b"key", value, headers) == LIMIT
    producer.produce("t", value, b"key", headers=headers or None)  # type: ignore[attr-defined]
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        producer.produce("t", value + b"v" * 100, b"key", headers=headers or None)  # type: ignore[attr-defined]
    producer.purge()  # type: ignore[attr-defined]


def test_a_dead_letter_that_fits_is_left_as_it_is() -> None:
    headers = ORIGINAL + CONTEXT
    assert fit_dead_letter(b"k", b"v" * 100, headers, LIMIT) == headers


def test_the_stack_trace_goes_first_and_the_trim_is_named() -> None:
    value = b"v" * (LIMIT - 6000)
    fitted = fit_dead_letter(b"k", value, ORIGINAL + CONTEXT, LIMIT)
    assert fitted == [*ORIGINAL, *CONTEXT[:2], (TRIMMED, "dlq.stacktrace")]
    assert record_size(b"k", value, fitted) <= LIMIT


def test_then_the_error_message_is_cut_then_dropped_never_the_original_headers() -> None:
    value = b"v" * (LIMIT - record_size(b"k", b"", ORIGINAL) - 400)
    cut = fit_dead_letter(b"k", value, ORIGINAL + CONTEXT, LIMIT)
    assert cut is not None
    assert cut[: len(ORIGINAL)] == ORIGINAL
    assert dict(cut)["dlq.error.message"] == b"m" * 256
    assert dict(cut)[TRIMMED] == "dlq.stacktrace,dlq.error.message"
    tighter = value + b"v" * 200
    dropped = fit_dead_letter(b"k", tighter, ORIGINAL + CONTEXT, LIMIT)
    assert dropped is not None
    assert "dlq.error.message" not in dict(dropped)
    assert dict(dropped)["dlq.stage"] == "decode"


def test_a_record_whose_original_bytes_do_not_fit_cannot_be_fitted() -> None:
    assert fit_dead_letter(b"k", b"v" * LIMIT, ORIGINAL + CONTEXT, LIMIT) is None
    assert fit_dead_letter(b"k", b"v" * LIMIT, ORIGINAL, LIMIT) is None  # not a dead letter


def test_a_keyed_record_goes_where_librdkafkas_default_partitioner_sends_it() -> None:
    assert key_partition(b"user-1", 6) == zlib.crc32(b"user-1") % 6
    assert {choose_partition(b"user-1", 6, held={0, 1, 2, 3, 4, 5})} == {
        key_partition(b"user-1", 6)
    }


@pytest.mark.parametrize("key", [None, b""])
def test_a_keyless_record_avoids_held_partitions(key: bytes | None) -> None:
    assert {choose_partition(key, 4, held={0, 1, 3}) for _ in range(50)} == {2}


def test_send_all_with_a_timeout_answers_records_it_could_not_send_as_purged() -> None:
    # No broker: every record stays queued, which the pass timeout purges (never written).
    unreachable = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    producer = EventProducer(unreachable, ProducerSettings(delivery_timeout_ms=300_000))
    records = [OutgoingRecord(n, "events.x", b"k", b"v", partition=n % 2) for n in range(5)]
    try:
        deliveries = producer.send_all(records, timeout=0.5)
    finally:
        producer.close(0)
    assert [d.ref for d in deliveries] == [0, 1, 2, 3, 4]
    assert {d.error.name if d.error else None for d in deliveries} == {"_PURGE_QUEUE"}


@pytest.mark.parametrize(
    "headers", [[], ORIGINAL + CONTEXT, [("名前", "値" * 300), ("n", None)], [("e", "😀" * 50)]]
)
def test_the_cheap_bound_never_says_fits_when_the_exact_count_does_not(
    headers: list[tuple[str, HeaderValue]],
) -> None:
    for size in range(0, 20_000, 97):
        value = b"v" * size
        if surely_fits(b"key", value, headers, LIMIT // 3):
            assert record_size(b"key", value, headers) <= LIMIT // 3
