"""Byte-exact vectors: fingerprints and single-object bytes computed from the Avro specification."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from schemas import ClickAction, ClickEvent, Codec
from schemas.avro_io import fingerprint, load_schema, write_body
from schemas.catalog import shipped_catalog

# CRC-64-AVRO as the specification writes it ("Schema Fingerprints"), independent of fastavro.
_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def spec_fingerprint(canonical_form: str) -> str:
    fp = _EMPTY
    for byte in canonical_form.encode():
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little").hex()  # single-object headers carry it little-endian


def zigzag_varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(text: str) -> bytes:
    data = text.encode()
    return zigzag_varint(len(data)) + data


def test_the_null_schema_has_the_published_fingerprint() -> None:
    assert fingerprint('"null"') == "8a8f25cce724dd63"
    assert spec_fingerprint('"null"') == "8a8f25cce724dd63"


def test_the_int_schema_has_the_published_fingerprint() -> None:
    assert fingerprint('{"type": "int"}') == "8f5c393f1ad57572"
    assert spec_fingerprint('"int"') == "8f5c393f1ad57572"


def test_a_small_record_encodes_to_the_bytes_the_specification_gives() -> None:
    schema = load_schema(
        json.dumps(
            {
                "type": "record",
                "name": "Pair",
                "doc": "docs are not part of the canonical form",
                "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}],
            }
        )
    )
    canonical = (
        '{"name":"Pair","type":"record","fields":'
        '[{"name":"a","type":"int"},{"name":"b","type":"string"}]}'
    )
    # c3 01 | CRC-64-AVRO of the canonical form, little-endian | a=1: zigzag 02 | b="hi": 04 68 69
    expected = bytes.fromhex("c3016df5cc5458c0322602046869")
    assert spec_fingerprint(canonical) == "6df5cc5458c03226"
    assert schema.fingerprint == "6df5cc5458c03226"
    assert schema.header + write_body(schema, {"a": 1, "b": "hi"}) == expected


def test_a_click_event_encodes_to_its_hand_built_single_object_bytes() -> None:
    newest = shipped_catalog()[-1]
    assert (newest.event_type, newest.version) == ("ClickEvent", 2)
    canonical = (
        '{"name":"oncepipe.events.ClickEvent","type":"record","fields":['
        '{"name":"event_id","type":"string"},'
        '{"name":"user_id","type":"string"},'
        '{"name":"item_id","type":"string"},'
        '{"name":"action","type":{"name":"oncepipe.events.ClickAction","type":"enum",'
        '"symbols":["view","click","add_to_cart","purchase"]}},'
        '{"name":"occurred_at","type":"long"},'
        '{"name":"session_id","type":"string"},'
        '{"name":"context","type":["null",{"type":"map","values":"string"}]},'
        '{"name":"surface","type":"string"}]}'
    )
    event_id = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
    at = datetime(2025, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
    event = ClickEvent(
        event_id=event_id,
        user_id="u-42",
        item_id="sku-7",
        action=ClickAction.ADD_TO_CART,
        occurred_at=at,
        session_id="s-1",
        context={"device": "ios"},
        surface="home",
    )
    millis = 1741964966535
    assert (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == millis
    body = (
        avro_string(str(event_id))
        + avro_string("u-42")
        + avro_string("sku-7")
        + zigzag_varint(2)  # add_to_cart is symbol 2
        + zigzag_varint(millis)
        + avro_string("s-1")
        + zigzag_varint(1)  # union branch 1: the map
        + zigzag_varint(1)  # one block of one entry
        + avro_string("device")
        + avro_string("ios")
        + zigzag_varint(0)  # end of the map's blocks
        + avro_string("home")
    )
    expected = b"\xc3\x01" + bytes.fromhex(spec_fingerprint(canonical)) + body

    encoded = Codec.load().encode(event)

    assert encoded.value == expected
    assert encoded.fingerprint == spec_fingerprint(canonical)
    assert encoded.key == b"u-42"
    assert encoded.event_id == event_id
    assert encoded.event_type == "ClickEvent"
