"""What the parser fuzzing found, pinned as plain examples (each failed before its fix)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from consumers.dlq.headers import (
    MAX_REPLAY_COUNT,
    DeadLetter,
    DeadLetterFormatError,
    parse_dead_letter,
    parse_ref,
)
from schemas import ClickEvent, Codec, CorruptBodyError, IncompatibleSchemaError
from schemas.avro_io import MAGIC, fingerprint, load_schema
from schemas.catalog import CatalogError, SchemaVersion, shipped_catalog
from schemas.shape import unbounded_shapes
from tests.fuzz.avro_strategies import NEWEST_DOC, SHIPPED, zigzag

LINKED_LIST = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
}


def newer_writer(extra_type: Any) -> str:
    """The newest ClickEvent schema plus a field ``x`` of ``extra_type``, as a newer producer
    would register it in the schema store."""
    return json.dumps(
        {**NEWEST_DOC, "fields": [*NEWEST_DOC["fields"], {"name": "x", "type": extra_type}]}
    )


def click_body() -> bytes:
    def text(value: str) -> bytes:
        return zigzag(len(value.encode())) + value.encode()

    return b"".join(
        [
            *(text(str(uuid.uuid4())), text("u-1"), text("i-1"), zigzag(0), zigzag(0)),
            *(text("s-1"), zigzag(0), text("feed")),
        ]
    )


def decode_with_store(text: str, tail: bytes) -> object:
    hex_fp = fingerprint(text)
    codec = Codec.load(lookup={hex_fp: text}.get)
    [result] = codec.decode_batch([MAGIC + bytes.fromhex(hex_fp) + click_body() + tail])
    return result


# -- the codec ---------------------------------------------------------------------------------


def test_a_newer_writer_with_an_array_of_zero_byte_items_is_refused_not_looped_over() -> None:
    # Before: ten bytes of block count (2**62) kept the decoder busy for ever; 10**7 took
    # seconds and was accepted.
    result = decode_with_store(
        newer_writer({"type": "array", "items": "null"}), zigzag(10**7) + b"\x00"
    )
    assert isinstance(result, IncompatibleSchemaError)
    assert "take no bytes" in str(result)


def test_a_newer_writer_with_a_recursive_type_is_refused_not_decoded() -> None:
    # Before: about 100 KB of nesting overflowed fastavro's C stack (SIGSEGV, a crash loop).
    result = decode_with_store(newer_writer(LINKED_LIST), b"\x02\x02" * 10 + b"\x02\x00")
    assert isinstance(result, IncompatibleSchemaError)
    assert "recursive type" in str(result)


@pytest.mark.parametrize("items", ["double", "boolean", {"type": "fixed", "name": "F", "size": 4}])
def test_a_huge_block_count_in_a_skipped_array_of_fixed_width_items_is_corrupt(items: Any) -> None:
    # Found by the long run: the reader skips the newer writer's field by seeking once per
    # item without checking the data is there, so 2**62 items spun for ever.
    result = decode_with_store(newer_writer({"type": "array", "items": items}), zigzag(2**62))
    assert isinstance(result, CorruptBodyError)


def test_a_newer_writer_with_harmless_extra_fields_is_still_read() -> None:
    extra = {"type": "array", "items": {"type": "map", "values": ["null", "string"]}}
    result = decode_with_store(
        newer_writer(extra),
        zigzag(1) + zigzag(1) + zigzag(1) + b"k" + zigzag(0) + zigzag(0) + zigzag(0),
    )
    assert isinstance(result, ClickEvent)


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ({"type": "array", "items": "null"}, "take no bytes"),
        ({"type": "array", "items": {"type": "fixed", "name": "Z", "size": 0}}, "take no bytes"),
        (
            {"type": "array", "items": {"type": "record", "name": "E", "fields": []}},
            "take no bytes",
        ),
        (LINKED_LIST, "recursive type"),
        ({"type": "array", "items": LINKED_LIST}, "recursive type"),
    ],
)
def test_shapes_a_body_could_abuse_are_named(shape: Any, problem: str) -> None:
    [found] = unbounded_shapes(load_schema(newer_writer(shape)).writing)
    assert problem in found


def test_shipped_schemas_have_no_shape_a_body_could_abuse() -> None:
    assert [unbounded_shapes(schema.writing) for schema in SHIPPED] == [[] for _ in SHIPPED]


def test_a_shipped_version_with_such_a_shape_is_refused_at_load() -> None:
    oldest, *newer = shipped_catalog()
    first = json.loads(oldest.schema.text)
    first["fields"].append({"name": "x", "type": LINKED_LIST})
    hostile = SchemaVersion(
        oldest.event_type, oldest.version, oldest.path, load_schema(json.dumps(first))
    )
    with pytest.raises(CatalogError, match=r"click_event\.v1\.avsc has the recursive type"):
        Codec([hostile, *newer])


# -- the dead-letter readers ---------------------------------------------------------------------


def parse(headers: list[tuple[str, bytes | None]], timestamp_ms: int | None = None) -> DeadLetter:
    return parse_dead_letter(
        headers,
        None,
        None,
        dlq_topic="t.dlq",
        dlq_partition=0,
        dlq_offset=0,
        dlq_timestamp_ms=timestamp_ms,
    )


def test_a_spring_timestamp_past_year_9999_is_refused_naming_the_header() -> None:
    # Before: ValueError("year 10889 is out of range"), which `dlq list` did not catch.
    with pytest.raises(DeadLetterFormatError, match="kafka_dlt-original-timestamp"):
        parse([("kafka_dlt-original-timestamp", (2**48).to_bytes(8, "big"))])


def test_an_oncepipe_timestamp_past_year_9999_is_refused_naming_the_header() -> None:
    with pytest.raises(DeadLetterFormatError, match=r"dlq\.original\.timestamp"):
        parse([("dlq.original.timestamp", b"99999999999999999")])


@pytest.mark.parametrize("dialect_header", ["dlq.stage", "__streams.errors.topic"])
def test_a_dead_letter_whose_own_timestamp_is_nonsense_still_parses(dialect_header: str) -> None:
    letter = parse([(dialect_header, b"x")], timestamp_ms=2**62)
    assert letter.dlq_timestamp is None
    assert letter.source_timestamp is None


def test_a_replay_count_of_non_ascii_digits_counts_as_none() -> None:
    # Before: "²".isdigit() is True, int("²") raised ValueError.
    assert parse([("dlq.stage", b"decode"), ("replay_count", "²".encode())]).replay_count == 0


@pytest.mark.parametrize("count", [b"9" * 5000, b"99999999999", b"2147483647"])
def test_a_huge_replay_count_reads_as_the_most_the_ledger_can_take_one_more_of(
    count: bytes,
) -> None:
    # Before: 5,000 digits made int() raise ValueError; 11 digits overflowed the ledger's
    # integer column on the next replay.
    letter = parse([("dlq.stage", b"decode"), ("replay_count", count)])
    assert letter.replay_count == MAX_REPLAY_COUNT == 2**31 - 2


def test_a_reference_with_non_ascii_digits_is_refused() -> None:
    with pytest.raises(DeadLetterFormatError, match="not a dead-letter reference"):
        parse_ref("events.click.dlq:0:²")


def test_a_refusal_quotes_only_the_start_of_a_huge_header() -> None:
    with pytest.raises(DeadLetterFormatError) as info:
        parse([("dlq.original.offset", b"9" * 5000 + b"x")])
    assert len(str(info.value)) < 200
