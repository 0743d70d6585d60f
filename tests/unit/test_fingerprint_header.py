"""The ``schema_fingerprint`` header's byte order, as the README documents it."""

from __future__ import annotations

from producers.outbox import event_headers
from schemas import Codec
from schemas.avro_io import fingerprint
from tests.fixtures.workers import make_clicks


def test_the_header_is_the_value_fingerprint_bytes_in_order_as_hex() -> None:
    codec = Codec.load()
    encoded = codec.encode(make_clicks(1, seed=3)[0])
    header = dict(event_headers(encoded))["schema_fingerprint"]
    assert encoded.value[:2] == b"\xc3\x01"
    assert header == encoded.value[2:10].hex()
    assert len(header) == 16
    assert header == header.lower()


def test_the_header_read_little_endian_is_the_crc64_avro_number() -> None:
    # The Avro specification's vector: the fingerprint of "int" is 0x7275d51a3f395c8f.
    header = fingerprint('"int"')
    assert header == "8f5c393f1ad57572"
    assert int.from_bytes(bytes.fromhex(header), "little") == 0x7275D51A3F395C8F
