"""Each kind of bad message raises its own error, saying what was wrong and what to do."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    BadMagicError,
    ClickAction,
    ClickEvent,
    Codec,
    CorruptBodyError,
    PayloadTooLargeError,
    SchemaError,
    UnknownFingerprintError,
    ValidationFailedError,
)
from schemas.avro_io import AvroSchema, load_schema, write_body
from schemas.catalog import shipped_catalog
from tests.unit.test_codec_vectors import avro_string, zigzag_varint

NEWEST = shipped_catalog()[-1].schema
EVENT = ClickEvent(
    event_id=uuid.UUID("9d4c1f0e-2b3a-4c5d-8e6f-7a8b9c0d1e2f"),
    user_id="u-7",
    item_id="i-7",
    action=ClickAction.VIEW,
    occurred_at=datetime(2025, 5, 5, tzinfo=UTC),
    session_id="s-7",
    surface="feed",
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load()


@pytest.fixture(scope="module")
def good(codec: Codec) -> bytes:
    return codec.encode(EVENT).value


def without_uuid_logical_type(schema: AvroSchema) -> AvroSchema:
    """The same wire schema (same fingerprint) minus the uuid annotation, to write bad ids."""
    document = json.loads(schema.text)
    document["fields"][0]["type"] = "string"
    plain = load_schema(json.dumps(document))
    assert plain.fingerprint == schema.fingerprint
    return plain


def raw_click(**changes: object) -> bytes:
    record: dict[str, object] = {
        "event_id": str(EVENT.event_id),
        "user_id": "u-7",
        "item_id": "i-7",
        "action": "view",
        "occurred_at": EVENT.occurred_at,
        "session_id": "s-7",
        "context": None,
        "surface": "feed",
    }
    record.update(changes)
    plain = without_uuid_logical_type(NEWEST)
    return plain.header + write_body(plain, record)


# -- size -------------------------------------------------------------------------------------


def test_an_oversized_message_is_refused_before_it_is_parsed() -> None:
    small = Codec.load(max_payload_bytes=64)
    garbage = b"not even avro" * 10  # bad magic too: the size check must come first
    with pytest.raises(PayloadTooLargeError, match="130 bytes, over the 64-byte limit") as info:
        small.decode(garbage)
    assert info.value.stage == "decode"


def test_a_message_exactly_at_the_limit_is_decoded(good: bytes) -> None:
    assert Codec.load(max_payload_bytes=len(good)).decode(good).record["user_id"] == "u-7"


def test_an_event_too_large_for_consumers_is_refused_at_encoding() -> None:
    big = EVENT.model_copy(update={"context": {"blob": "x" * 200}})
    with pytest.raises(PayloadTooLargeError, match="shrink the event"):
        Codec.load(max_payload_bytes=128).encode(big)


# -- magic ------------------------------------------------------------------------------------


def test_json_instead_of_avro_is_bad_magic(codec: Codec) -> None:
    with pytest.raises(BadMagicError, match=r"starts with 7b 22 .* looks like JSON"):
        codec.decode(b'{"event_id": "x"}')


def test_confluent_framing_is_bad_magic_and_recognised(codec: Codec, good: bytes) -> None:
    confluent = b"\x00\x00\x00\x00\x07" + good[10:]
    with pytest.raises(BadMagicError, match="Confluent Schema Registry wire format"):
        codec.decode(confluent)


@pytest.mark.parametrize("value", [b"", b"\xc3", b"\xc2\x01" + bytes(20)])
def test_short_or_wrong_markers_are_bad_magic(codec: Codec, value: bytes) -> None:
    with pytest.raises(BadMagicError, match="not the Avro single-object marker c3 01"):
        codec.decode(value)


def test_a_tombstone_is_bad_magic(codec: Codec) -> None:
    with pytest.raises(BadMagicError, match="tombstone"):
        codec.decode(None)


# -- fingerprint ------------------------------------------------------------------------------


def test_an_unknown_fingerprint_says_how_to_make_it_known(codec: Codec, good: bytes) -> None:
    value = b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + good[10:]
    with pytest.raises(UnknownFingerprintError, match=r"SchemaStore\.register") as info:
        codec.decode(value)
    assert info.value.fingerprint == "0123456789abcdef"
    assert "0123456789abcdef" in str(info.value)


# -- body -------------------------------------------------------------------------------------


def test_a_header_cut_short_is_corrupt(codec: Codec, good: bytes) -> None:
    with pytest.raises(CorruptBodyError, match="shorter than the 10-byte"):
        codec.decode(good[:7])


def test_a_truncated_body_is_corrupt(codec: Codec, good: bytes) -> None:
    with pytest.raises(CorruptBodyError, match="truncated or corrupt: EOFError") as info:
        codec.decode(good[:-2])
    assert info.value.fingerprint == NEWEST.fingerprint


def test_trailing_bytes_are_corrupt(codec: Codec, good: bytes) -> None:
    with pytest.raises(CorruptBodyError, match="3 trailing byte"):
        codec.decode(good + b"\x00\x00\x00")


def test_invalid_utf8_in_a_string_is_corrupt(codec: Codec, good: bytes) -> None:
    at = good.index(b"u-7")
    damaged = good[:at] + b"\xff\xfe" + good[at + 2 :]
    with pytest.raises(CorruptBodyError, match="UnicodeDecodeError"):
        codec.decode(damaged)


def test_an_enum_index_out_of_range_is_corrupt(codec: Codec) -> None:
    body = (
        avro_string(str(EVENT.event_id))
        + avro_string("u-7")
        + avro_string("i-7")
        + zigzag_varint(9)  # ClickAction has 4 symbols
        + zigzag_varint(0)
        + avro_string("s-7")
        + zigzag_varint(0)
        + avro_string("feed")
    )
    with pytest.raises(CorruptBodyError, match="IndexError"):
        codec.decode(NEWEST.header + body)


def test_a_negative_length_is_corrupt(codec: Codec) -> None:
    with pytest.raises(CorruptBodyError):
        codec.decode(NEWEST.header + zigzag_varint(-5) + bytes(40))


# -- model ------------------------------------------------------------------------------------


def test_a_malformed_uuid_fails_validation_naming_the_field(codec: Codec) -> None:
    decoded = codec.decode(raw_click(event_id="not-a-uuid"))
    with pytest.raises(
        ValidationFailedError, match="event_id: Input should be a valid UUID"
    ) as info:
        codec.to_model(decoded)
    assert info.value.paths == ("event_id",)
    assert info.value.stage == "validate"
    assert info.value.fingerprint == NEWEST.fingerprint


def test_an_empty_user_id_fails_validation_naming_the_field(codec: Codec) -> None:
    decoded = codec.decode(raw_click(user_id="", session_id=""))
    with pytest.raises(ValidationFailedError, match="fix the producer") as info:
        codec.to_model(decoded)
    assert info.value.paths == ("user_id", "session_id")


def test_every_error_is_a_schema_error_and_a_value_error() -> None:
    for error in (
        BadMagicError,
        UnknownFingerprintError,
        CorruptBodyError,
        ValidationFailedError,
        PayloadTooLargeError,
    ):
        assert issubclass(error, SchemaError)
        assert issubclass(error, ValueError)


# -- batches ----------------------------------------------------------------------------------


def test_a_batch_returns_each_failure_in_its_slot(codec: Codec, good: bytes) -> None:
    values = [good, b"{}", good[:-1], raw_click(event_id="nope"), None, good]
    results = codec.decode_batch(values)
    assert [type(r) for r in results] == [
        ClickEvent,
        BadMagicError,
        CorruptBodyError,
        ValidationFailedError,
        BadMagicError,
        ClickEvent,
    ]


@given(position=st.integers(min_value=0, max_value=200), junk=st.binary(min_size=1, max_size=8))
def test_damaged_bytes_never_raise_anything_but_schema_errors(position: int, junk: bytes) -> None:
    codec = Codec.load()
    good = codec.encode(EVENT).value
    at = position % (len(good) + 1)
    for damaged in (good[:at] + junk + good[at:], good[:at] + junk, good[:at] + good[at + 1 :]):
        [result] = codec.decode_batch([damaged])
        assert isinstance(result, ClickEvent | SchemaError)


@given(value=st.binary(max_size=120))
def test_arbitrary_bytes_never_raise_anything_but_schema_errors(value: bytes) -> None:
    codec = Codec.load()
    for candidate in (value, NEWEST.header + value):
        [result] = codec.decode_batch([candidate])
        assert isinstance(result, ClickEvent | SchemaError)
