"""The fast encode path writes the same bytes and headers as before, and as fastavro does."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec
from schemas.avro_io import load_schema, write_body
from schemas.avro_write import compile_writer
from schemas.errors import ValidationFailedError

CODEC = Codec.load()
PRODUCED_AT = datetime(2026, 11, 29, 21, 0, 0, 123456, tzinfo=UTC)

# SHA-256 of the values, keys and headers of ``wire_events()`` as the encoder wrote them before
# the compiled writer (fastavro's schemaless_writer, headers formatted per event).
FROZEN_DIGEST = "71e07f5dd32cf4953e49c227e2a60a1277a54dd06d1d265b96bde48e1650bd3e"


def wire_events() -> list[ClickEvent]:
    """Events covering each field's edge cases: long and non-ASCII strings, big maps, no map,
    an empty map, every action, timestamps before the epoch and far after it."""
    rng = random.Random(26)
    texts = ["a", "é", "日本語", "x" * 63, "y" * 64, "z" * 127, "w" * 128, "v" * 200]
    moments = [
        datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 21, 0, 0, 1000, tzinfo=UTC),
        datetime(2999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2026, 6, 1, 12, tzinfo=UTC) + timedelta(hours=5, milliseconds=7),
    ]
    contexts: list[dict[str, str] | None] = [
        None,
        {},
        {"device": "ios", "locale": "en-GB", "arm": "b1"},
        {f"attr_{i:03d}": rng.randbytes(16).hex() for i in range(200)},
        {"ключ": "значение", "": ""},
    ]
    actions = list(ClickAction)
    return [
        ClickEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=texts[n % len(texts)],
            item_id=f"sku-{rng.randrange(10**9)}",
            action=actions[n % len(actions)],
            occurred_at=moments[n % len(moments)],
            session_id=texts[(n * 7) % len(texts)],
            context=contexts[n % len(contexts)],
            surface=["", *texts, "s" * 20_000][(n * 3) % (len(texts) + 2)],
        )
        for n in range(300)
    ]


def wire_digest(codec: Any, headers_of: Any) -> str:
    """The digest of every event's value, key and headers, in order."""
    digest = hashlib.sha256()
    for encoded in codec.encode_batch(wire_events()):
        digest.update(encoded.value)
        digest.update(b"\0" + encoded.key + b"\0")
        for name, value in headers_of(encoded, produced_at=PRODUCED_AT):
            digest.update(f"{name}={value}\0".encode())
    return digest.hexdigest()


def test_values_keys_and_headers_are_byte_identical_to_the_previous_encoder() -> None:
    assert wire_digest(CODEC, event_headers) == FROZEN_DIGEST


def test_every_shipped_schema_has_a_compiled_writer_matching_fastavro() -> None:
    for fingerprint, (_, text) in CODEC.writer_schemas().items():
        schema = load_schema(text)
        assert schema.compiled is not None, fingerprint
    newest = load_schema(CODEC.writer_schemas()[CODEC.newest_fingerprint("ClickEvent")][1])
    for event in wire_events():
        assert write_body(newest, event.__dict__) == fastavro_bytes(newest.writing, event.__dict__)


def fastavro_bytes(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


MIXED_DOC = {
    "type": "record",
    "name": "Mixed",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "opt", "type": ["string", "null"]},
        {"name": "tags", "type": {"type": "array", "items": "long"}},
        {"name": "nums", "type": ["null", {"type": "map", "values": "double"}]},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [{"name": "s", "type": "string"}],
            },
        },
    ],
}
MIXED = parse_schema(MIXED_DOC)
MIXED_WRITER = compile_writer(MIXED)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "i": st.integers(-(2**31), 2**31 - 1),
            "l": st.integers(-(2**63), 2**63 - 1),
            "b": st.booleans(),
            "f": st.floats(width=32, allow_nan=False),
            "d": st.floats(allow_nan=False),
            "raw": st.binary(max_size=300),
            "opt": st.none() | st.text(max_size=200),
            "tags": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=150),
            "nums": st.none() | st.dictionaries(st.text(max_size=5), st.floats(allow_nan=False)),
            "inner": st.fixed_dictionaries({"s": st.text(max_size=300)}),
        }
    )
)
def test_the_compiled_writer_writes_fastavros_bytes_for_any_value(record: dict[str, Any]) -> None:
    assert MIXED_WRITER is not None
    assert MIXED_WRITER(record) == fastavro_bytes(MIXED, record)


@pytest.mark.parametrize(
    "odd",
    [
        {"l": 2**63},  # out of range: fastavro decides
        {"l": True},
        {"i": 2**31},
        {"d": 1},  # an int where a double goes
        {"f": 1e300},  # too large for a float
        {"opt": "\ud800"},  # a lone surrogate: not UTF-8
        {"raw": bytearray(b"x")},
        {"tags": (1, 2)},
        {"opt": 5},
    ],
)
def test_values_the_compiled_writer_does_not_take_exactly_are_left_to_fastavro(
    odd: dict[str, Any],
) -> None:
    record = {
        "i": 1, "l": 2, "b": True, "f": 0.5, "d": 1.5, "raw": b"", "opt": None, "tags": [],
        "nums": None, "inner": {"s": ""}, **odd,
    }  # fmt: skip
    schema = load_schema(json.dumps(MIXED_DOC))
    _assert_writes_as_fastavro_or_refuses(schema, MIXED, record)


def test_a_model_built_without_validation_is_still_refused_with_its_field() -> None:
    good = wire_events()[2]
    bad = ClickEvent.model_construct(**{**good.__dict__, "occurred_at": "yesterday"})
    with pytest.raises(ValidationFailedError, match="does not fit schema"):
        CODEC.encode(bad)


def test_produced_at_is_now_in_utc_to_the_millisecond() -> None:
    encoded = CODEC.encode(wire_events()[0])
    before = datetime.now(UTC).replace(microsecond=0)
    text = dict(event_headers(encoded))["produced_at"]
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", text)
    assert before <= datetime.fromisoformat(text) <= after


LOGICAL_DOC = {
    "type": "record",
    "name": "Logical",
    "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "n", "type": {"type": "int"}},
        {"name": "s", "type": {"type": "string"}},
        {"name": "maybe", "type": [{"type": "map", "values": "string"}, "null"]},
    ],
}
LOGICAL = parse_schema(LOGICAL_DOC)
LOGICAL_GOOD = {
    "id": uuid.UUID(int=7),
    "at": datetime(2026, 1, 1, tzinfo=UTC),
    "kind": "b",
    "n": -5,
    "s": "x",
    "maybe": {"k": "v"},
}


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"id": "not-a-uuid-but-a-string"},  # fastavro writes strings as they are
        {"id": 5},
        {"at": datetime(2026, 1, 1)},  # naive: fastavro's own rule
        {"at": datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)},
        {"at": datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=2)))},
        {"at": 1_700_000_000_000},
        {"at": 2**63},
        {"kind": "c"},
        {"kind": ClickAction.VIEW},  # a str subclass not among the symbols
        {"n": 2**31},
        {"n": 1.0},
        {"s": None},
        {"maybe": None},
        {"maybe": {"k": 1}},
    ],
)
def test_the_generated_record_writer_matches_fastavro_or_leaves_the_value_to_it(
    odd: dict[str, Any],
) -> None:
    record = {**LOGICAL_GOOD, **odd}
    schema = load_schema(json.dumps(LOGICAL_DOC))
    assert schema.compiled is not None
    _assert_writes_as_fastavro_or_refuses(schema, LOGICAL, record)


def test_a_record_missing_a_field_is_left_to_fastavro() -> None:
    schema = load_schema(json.dumps(LOGICAL_DOC))
    record = {key: value for key, value in LOGICAL_GOOD.items() if key != "maybe"}
    assert schema.compiled is not None
    with pytest.raises(KeyError):
        schema.compiled(record)
    assert write_body(schema, record) == fastavro_bytes(LOGICAL, record)


def _assert_writes_as_fastavro_or_refuses(schema: Any, parsed: Any, record: dict[str, Any]) -> None:
    """``write_body`` writes fastavro's bytes for ``record``, or raises where fastavro does."""
    try:
        expected: bytes | type[Exception] = fastavro_bytes(parsed, record)
    except Exception as exc:  # noqa: BLE001 - whatever fastavro raises, write_body must too
        expected = type(exc)
    if isinstance(expected, bytes):
        assert write_body(schema, record) == expected
    else:
        with pytest.raises(Exception):  # noqa: B017, PT011 - wrapped as AvroDataError
            write_body(schema, record)
