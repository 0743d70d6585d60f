"""Avro through fastavro: the only module that imports ``fastavro``.

A schema is parsed once, when it is loaded, into an ``AvroSchema`` holding everything the hot
path needs (fastavro re-parses a schema given as plain JSON on every call, which is orders of
magnitude slower). Writing goes through the schema's compiled writer (``schemas.avro_write``)
when it has one, fastavro otherwise: the same bytes either way. Reading never converts
``uuid`` strings: the event model does, so a bad UUID is reported as a validation failure
naming its field rather than as a corrupt body.

Public names: ``MAGIC``, ``AvroSchema``, ``AvroDataError``, ``InvalidSchemaError``,
``load_schema``, ``fingerprint``, ``write_body``, ``read_body``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException, UnknownType, to_parsing_canonical_form
from fastavro.schema import fingerprint as _crc64

from schemas.avro_write import FALLBACK_ERRORS, compile_writer
from schemas.errors import OncepipeError

__all__ = [
    "MAGIC",
    "AvroDataError",
    "AvroSchema",
    "InvalidSchemaError",
    "fingerprint",
    "load_schema",
    "read_body",
    "write_body",
]

# What fastavro raises on bytes that are not a value of the writer schema: short reads
# (EOFError), bad UTF-8 (UnicodeDecodeError is a ValueError), enum or union indexes out of
# range (IndexError), varints longer than 64 bits or dates out of range (OverflowError), and
# a writer the reader cannot resolve (SchemaResolutionError).
_READ_ERRORS = (EOFError, ValueError, IndexError, OverflowError, KeyError, SchemaResolutionError)
_WRITE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, KeyError)

MAGIC = b"\xc3\x01"
"""The first two bytes of every Avro single-object encoded message."""


class InvalidSchemaError(OncepipeError, ValueError):
    """The text is not a valid Avro schema; the message says why.

    Also a ``ValueError``: callers that try a text as a schema catch bad input as one.
    """


class AvroDataError(OncepipeError):
    """Bytes that are not a value of the schema, or a value that does not fit it."""


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """One schema version, parsed once: its text, fingerprint and fastavro forms."""

    text: str
    fingerprint: str
    """CRC-64-AVRO of the parsing canonical form, 16 hex chars in header byte order."""
    header: bytes
    """The 10-byte single-object header: ``C3 01`` + the fingerprint's 8 bytes."""
    full_name: str
    writing: Any
    reading: Any
    compiled: Callable[[Mapping[str, Any]], bytes] | None = field(
        default=None, compare=False, repr=False
    )
    """The compiled writer (``schemas.avro_write``), None when the schema's shape has none."""

    @property
    def name(self) -> str:
        """The unqualified name (``ClickEvent``), or the type name of an unnamed schema."""
        return self.full_name.rpartition(".")[2]


def fingerprint(text: str) -> str:
    """The CRC-64-AVRO fingerprint of a schema's JSON text, as 16 hex chars."""
    return _fingerprint(_json(text))


def load_schema(text: str) -> AvroSchema:
    """Parse a schema's JSON text once, for writing and for reading."""
    document = _json(text)
    try:
        writing = parse_schema(document)
        reading = parse_schema(_without_uuid(document))
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchemaError(f"not a valid Avro schema: {exc}") from exc
    hex_fp = _fingerprint(document)
    full_name = writing.get("name", writing["type"]) if isinstance(writing, dict) else writing
    return AvroSchema(
        text=text,
        fingerprint=hex_fp,
        header=MAGIC + bytes.fromhex(hex_fp),
        full_name=str(full_name),
        writing=writing,
        reading=reading,
        compiled=compile_writer(writing),
    )


def write_body(schema: AvroSchema, record: Mapping[str, Any]) -> bytes:
    """The Avro binary encoding of ``record`` (no header)."""
    if schema.compiled is not None:
        try:
            return schema.compiled(record)
        except FALLBACK_ERRORS:
            pass  # not a record the compiled writer handles exactly: fastavro decides
    out = io.BytesIO()
    try:
        schemaless_writer(out, schema.writing, record)
    except _WRITE_ERRORS as exc:
        raise AvroDataError(f"{type(exc).__name__}: {exc}") from exc
    return out.getvalue()


def read_body(
    data: bytes, offset: int, writer: AvroSchema, reader: AvroSchema | None = None
) -> Any:
    """Decode the value at ``data[offset:]`` written with ``writer``, resolved into ``reader``.

    Every byte must be consumed: trailing bytes mean the body is not what the header claims.
    """
    # Resolution may skip writer fields; fastavro skips fixed-width items by seeking without
    # checking the data is there, so a 2**62 block count would spin: the checked stream ends it.
    stream = io.BytesIO(data) if reader is None else _CheckedStream(data)
    stream.seek(offset)
    target = None if reader is None else reader.reading
    try:
        value = schemaless_reader(stream, writer.reading, target)
    except _READ_ERRORS as exc:
        detail = str(exc) or "unexpected end of data"
        raise AvroDataError(f"{type(exc).__name__}: {detail}") from exc
    left = len(data) - stream.tell()
    if left:
        raise AvroDataError(f"{left} trailing byte(s) after the value")
    return value


class _CheckedStream(io.BytesIO):
    """A ``BytesIO`` whose short reads and seeks past the end raise ``EOFError``."""

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and size > 0 and len(data) < size:
            raise EOFError(f"expected {size} bytes, found {len(data)}")
        return data

    def seek(self, pos: int, whence: int = 0, /) -> int:
        at = super().seek(pos, whence)
        if at > len(self.getbuffer()):
            raise EOFError("a skip ran past the end of the data")
        return at


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidSchemaError(f"schema text is not JSON: {exc}") from exc


def _fingerprint(document: Any) -> str:
    try:
        canonical = to_parsing_canonical_form(document)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchemaError(f"not a valid Avro schema: {exc}") from exc
    return str(_crc64(canonical, "CRC-64-AVRO"))


def _without_uuid(node: Any) -> Any:
    """A copy of a schema document with every ``uuid`` logical type removed."""
    if isinstance(node, list):
        return [_without_uuid(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _without_uuid(value) for key, value in node.items()}
    if copy.get("type") == "string" and copy.get("logicalType") == "uuid":
        del copy["logicalType"]
    return copy
