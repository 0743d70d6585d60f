"""Round trips: every writer version reads back, into every reader version and into the model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import ClickAction, ClickEvent, Codec, Decoded
from schemas.avro_io import read_body
from schemas.catalog import SchemaVersion, shipped_catalog

VERSIONS = [v for v in shipped_catalog() if v.event_type == "ClickEvent"]
NEWEST = VERSIONS[-1]

identifiers = st.text(min_size=1, max_size=24)
offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
click_events = st.builds(
    ClickEvent,
    event_id=st.uuids(),
    user_id=identifiers,
    item_id=identifiers,
    action=st.sampled_from(ClickAction),
    occurred_at=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
    ),
    session_id=identifiers,
    context=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=4),
    surface=st.text(max_size=12),
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load()


def sample(**changes: object) -> ClickEvent:
    fields: dict[str, object] = {
        "event_id": uuid.UUID("0b7e3f1e-8d2a-4c55-9e0f-3a1b2c3d4e5f"),
        "user_id": "u-1",
        "item_id": "i-1",
        "action": ClickAction.CLICK,
        "occurred_at": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "session_id": "s-1",
        "context": {"device": "android"},
        "surface": "search",
    }
    fields.update(changes)
    return ClickEvent.model_validate(fields)


@pytest.mark.parametrize("writer", VERSIONS, ids=lambda v: f"v{v.version}")
@pytest.mark.parametrize("reader", VERSIONS, ids=lambda v: f"v{v.version}")
def test_every_writer_version_reads_into_every_reader_version(
    codec: Codec, writer: SchemaVersion, reader: SchemaVersion
) -> None:
    encoded = codec.encode_with(sample(), writer.schema.fingerprint)
    record = read_body(encoded.value, 10, writer.schema, reader.schema)
    reader_fields = [f["name"] for f in reader.schema.writing["fields"]]
    assert list(record) == reader_fields
    expected_surface = "search" if writer.version >= 2 else "unknown"
    if "surface" in reader_fields:
        assert record["surface"] == expected_surface


@pytest.mark.parametrize("writer", VERSIONS, ids=lambda v: f"v{v.version}")
def test_the_codec_decodes_every_writer_version_into_the_newest(
    codec: Codec, writer: SchemaVersion
) -> None:
    encoded = codec.encode_with(sample(), writer.schema.fingerprint)
    decoded = codec.decode(encoded.value)
    assert decoded.fingerprint == writer.schema.fingerprint
    assert decoded.event_type == "ClickEvent"
    assert list(decoded.record) == [f["name"] for f in NEWEST.schema.writing["fields"]]
    expected = sample() if writer is NEWEST else sample(surface="unknown")
    assert codec.to_model(decoded) == expected


def test_encode_writes_the_newest_version_keyed_by_the_user(codec: Codec) -> None:
    encoded = codec.encode(sample(user_id="user-ü"))
    assert (
        encoded.fingerprint == NEWEST.schema.fingerprint == codec.newest_fingerprint("ClickEvent")
    )
    assert encoded.value.startswith(b"\xc3\x01" + bytes.fromhex(encoded.fingerprint))
    assert encoded.key == "user-ü".encode()


def test_writer_schemas_lists_every_shipped_version(codec: Codec) -> None:
    assert codec.writer_schemas() == {
        v.schema.fingerprint: ("ClickEvent", v.schema.text) for v in VERSIONS
    }


def test_loading_twice_reuses_the_parsed_schemas() -> None:
    assert shipped_catalog() is shipped_catalog()
    first, second = Codec.load(), Codec.load()
    assert first.writer_schemas() == second.writer_schemas()


def test_occurred_at_keeps_milliseconds_in_utc() -> None:
    local = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = sample(occurred_at=local)
    assert event.occurred_at == datetime(2025, 6, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


def test_batch_decoding_returns_models_in_order(codec: Codec) -> None:
    events = [sample(user_id=f"u-{n}") for n in range(5)]
    values = [e.value for e in codec.encode_batch(events)]
    assert codec.decode_batch(values) == events


def test_a_decoded_record_can_be_validated_later(codec: Codec) -> None:
    decoded = codec.decode(codec.encode(sample()).value)
    copy = Decoded(decoded.event_type, decoded.fingerprint, dict(decoded.record))
    assert codec.to_model(copy) == sample()


@given(event=click_events)
def test_encode_decode_to_model_is_the_identity(event: ClickEvent) -> None:
    codec = Codec.load()
    encoded = codec.encode(event)
    assert codec.to_model(codec.decode(encoded.value)) == event
    assert codec.decode_batch([encoded.value]) == [event]


@given(event=click_events)
def test_older_writers_lose_only_the_fields_they_do_not_have(event: ClickEvent) -> None:
    codec = Codec.load()
    encoded = codec.encode_with(event, VERSIONS[0].schema.fingerprint)
    assert codec.to_model(codec.decode(encoded.value)) == event.model_copy(
        update={"surface": "unknown"}
    )
