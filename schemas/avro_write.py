"""A compiled Avro binary writer for the common shapes of event schemas, fastavro's bytes exactly.

fastavro's ``schemaless_writer`` walks the parsed schema for every record (type names, logical
type look-ups, a stream object): about half the producer's Python time per event. This module
turns a parsed schema into a writer once: the top-level record becomes one generated function
whose fields are written straight-line (strings, uuids, enums, longs and timestamps inline, no
call per field), nested values a chain of small closures; precomputed varints for small
lengths and enum indexes.

Only unambiguous shapes are compiled: records, ``null``, ``boolean``, ``int``, ``long``,
``float``, ``double``, ``bytes``, ``string``, enums, maps, arrays, ``uuid`` strings,
``timestamp-millis`` longs and unions of ``null`` with one other type. Any other schema gets no
compiled writer (``compile_writer`` returns None) and is written by fastavro. A value the
compiled writer does not accept exactly (a wrong type, a long out of range, a missing field)
raises ``Unsupported`` or one of ``FALLBACK_ERRORS``, and the caller hands the record to
fastavro, which writes it or raises its own error: the compiled writer never writes bytes
fastavro would not.

Public names: ``FALLBACK_ERRORS``, ``Unsupported``, ``compile_writer``.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.errors import OncepipeError

__all__ = ["FALLBACK_ERRORS", "Unsupported", "compile_writer"]

Write = Callable[[Any, list[bytes]], None]
"""Appends the encoding of one value to the parts list."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class Unsupported(OncepipeError):  # noqa: N818 - a signal to fall back, not an error to report
    """A value or schema the compiled writer does not handle; use fastavro (never escapes)."""


FALLBACK_ERRORS = (Unsupported, KeyError, TypeError, AttributeError, ValueError, OverflowError)
"""What a compiled writer raises for a record it cannot write: hand that record to fastavro."""


def _varint(n: int) -> bytes:
    """Zig-zag varint of a 64-bit signed integer, as Avro writes ``int`` and ``long``."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = tuple(_varint(n) for n in range(128))
"""Varints of 0..127: lengths of short strings, counts, enum and union indexes."""
_SMALL_LEN = len(_SMALL)


def _long(n: int, low: int = _LONG_MIN, high: int = _LONG_MAX) -> bytes:
    if n.__class__ is not int or not low <= n <= high:
        raise Unsupported
    return _SMALL[n] if 0 <= n < _SMALL_LEN else _varint(n)


def _length(n: int) -> bytes:
    return _SMALL[n] if n < _SMALL_LEN else _varint(n)


def _write_string(value: Any, parts: list[bytes]) -> None:
    if not isinstance(value, str):
        raise Unsupported
    data = value.encode()
    parts.append(_length(len(data)))
    parts.append(data)


def _write_uuid(value: Any, parts: list[bytes]) -> None:
    # fastavro writes a UUID as its canonical string and passes strings through as they are.
    _write_string(str(value) if value.__class__ is uuid.UUID else value, parts)


def _write_bytes(value: Any, parts: list[bytes]) -> None:
    if value.__class__ is not bytes:
        raise Unsupported
    parts.append(_length(len(value)))
    parts.append(value)


def _write_long(value: Any, parts: list[bytes]) -> None:
    parts.append(_long(value))


def _write_int(value: Any, parts: list[bytes]) -> None:
    parts.append(_long(value, _INT_MIN, _INT_MAX))


def _write_timestamp_millis(value: Any, parts: list[bytes]) -> None:
    if value.__class__ is datetime and value.tzinfo is not None:
        # fastavro truncates the (never negative) microseconds part towards zero: the floor.
        value = (value - _EPOCH) // _ONE_MS
    parts.append(_long(value))


def _write_boolean(value: Any, parts: list[bytes]) -> None:
    if value is True:
        parts.append(b"\x01")
    elif value is False:
        parts.append(b"\x00")
    else:
        raise Unsupported


def _write_null(value: Any, parts: list[bytes]) -> None:
    if value is not None:
        raise Unsupported


def _packer(fmt: str) -> Write:
    pack = struct.Struct(fmt).pack

    def write(value: Any, parts: list[bytes]) -> None:
        if value.__class__ is not float:
            raise Unsupported
        parts.append(pack(value))

    return write


_PRIMITIVES: dict[str, Write] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_int,
    "long": _write_long,
    "float": _packer("<f"),
    "double": _packer("<d"),
    "bytes": _write_bytes,
    "string": _write_string,
}
_LOGICAL: dict[tuple[str, str], Write] = {
    ("string", "uuid"): _write_uuid,
    ("long", "timestamp-millis"): _write_timestamp_millis,
}


def _enum(symbols: list[str]) -> Write:
    index = {symbol: _length(n) for n, symbol in enumerate(symbols)}

    def write(value: Any, parts: list[bytes]) -> None:
        if not isinstance(value, str) or value not in index:
            raise Unsupported
        parts.append(index[value])

    return write


def _map(values: Write) -> Write:
    if values is _write_string:
        return _write_string_map

    def write(value: Any, parts: list[bytes]) -> None:
        if value.__class__ is not dict:
            raise Unsupported
        if value:
            parts.append(_length(len(value)))
            for key, item in value.items():
                _write_string(key, parts)
                values(item, parts)
        parts.append(b"\x00")

    return write


def _write_string_map(value: Any, parts: list[bytes]) -> None:
    # The common map<string>, inlined: no call per key or value.
    if value.__class__ is not dict:
        raise Unsupported
    if value:
        append = parts.append
        append(_length(len(value)))
        for key, item in value.items():
            if key.__class__ is not str or item.__class__ is not str:
                raise Unsupported
            data = key.encode()
            size = len(data)
            append(_SMALL[size] if size < _SMALL_LEN else _varint(size))
            append(data)
            data = item.encode()
            size = len(data)
            append(_SMALL[size] if size < _SMALL_LEN else _varint(size))
            append(data)
    parts.append(b"\x00")


def _array(items: Write) -> Write:
    def write(value: Any, parts: list[bytes]) -> None:
        if value.__class__ is not list:
            raise Unsupported
        if value:
            parts.append(_length(len(value)))
            for item in value:
                items(item, parts)
        parts.append(b"\x00")

    return write


def _optional(other: Write, null_first: bool) -> Write:
    null_index, other_index = (b"\x00", b"\x02") if null_first else (b"\x02", b"\x00")

    def write(value: Any, parts: list[bytes]) -> None:
        if value is None:
            parts.append(null_index)
        else:
            parts.append(other_index)
            other(value, parts)

    return write


def _record(fields: list[tuple[str, Write]]) -> Write:
    # A missing field raises KeyError (fastavro may write its default): the caller falls back.
    # Plain strings, most fields of an event, are written inline: no call per field.
    plan = [(name, field is _write_string, field) for name, field in fields]

    def write(value: Any, parts: list[bytes]) -> None:
        append = parts.append
        for name, is_string, field in plan:
            item = value[name]
            if is_string and item.__class__ is str:
                data = item.encode()
                size = len(data)
                append(_SMALL[size] if size < _SMALL_LEN else _varint(size))
                append(data)
            else:
                field(item, parts)

    return write


def _compile(schema: Any) -> Write:
    if isinstance(schema, str) and schema in _PRIMITIVES:
        return _PRIMITIVES[schema]
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        other = schema[1] if schema[0] == "null" else schema[0]
        if other != "null":
            return _optional(_compile(other), schema[0] == "null")
    if isinstance(schema, dict):
        return _compile_complex(schema)
    raise Unsupported  # a named type referenced by name, a wider union


def _compile_complex(schema: dict[str, Any]) -> Write:
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical is not None:
        writer = _LOGICAL.get((str(kind), str(logical)))
        if writer is None:
            raise Unsupported
        return writer
    if kind == "record":
        return _record([(field["name"], _compile(field["type"])) for field in schema["fields"]])
    if kind == "enum":
        return _enum(list(schema["symbols"]))
    if kind == "map":
        return _map(_compile(schema["values"]))
    if kind == "array":
        return _array(_compile(schema["items"]))
    if isinstance(kind, str) and kind in _PRIMITIVES and schema.keys() == {"type"}:
        return _PRIMITIVES[kind]
    raise Unsupported


def compile_writer(schema: Any) -> Callable[[Mapping[str, Any]], bytes] | None:
    """A writer of records of the parsed ``schema``, or None when it has a shape not compiled.

    The writer raises one of ``FALLBACK_ERRORS`` for a record it does not handle exactly;
    write that one with fastavro.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    try:
        return _generate(schema["fields"])
    except (Unsupported, KeyError, TypeError):
        return None


# Straight-line code for the top-level record. The source holds only these templates and
# numbered names (field names, writers and tables are bound in its namespace): no schema text.
_STRING = """\
    if not isinstance(v, str):
        raise Unsupported
    b = v.encode()
    n = len(b)
    a(S[n] if n < 128 else varint(n))
    a(b)
"""
_LONG = """\
    if v.__class__ is not int or not LO{i} <= v <= HI{i}:
        raise Unsupported
    a(S[v] if 0 <= v < 128 else varint(v))
"""
_TEMPLATES: dict[str, str] = {
    "string": _STRING,
    "uuid": "    if v.__class__ is UUID:\n        v = str(v)\n" + _STRING,
    "enum": "    if not isinstance(v, str):\n        raise Unsupported\n    a(E{i}[v])\n",
    "long": _LONG,
    "timestamp": "    if v.__class__ is datetime and v.tzinfo is not None:\n"
    "        v = (v - EPOCH) // ONE_MS\n" + _LONG,
    "optional": "    if v is None:\n        a(NULL{i})\n    else:\n        a(OTHER{i})\n"
    "        W{i}(v, parts)\n",
    "call": "    W{i}(v, parts)\n",
}


def _field_kind(schema: Any) -> tuple[str, dict[str, Any]]:
    """How the generated writer writes a field of ``schema``, and the names it needs bound."""
    if isinstance(schema, dict) and schema.keys() == {"type"}:
        schema = schema["type"]
    inline = _inline_kind(schema)
    if inline is not None:
        return inline
    if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
        other = schema[1] if schema[0] == "null" else schema[0]
        if other != "null":
            null_first = schema[0] == "null"
            return "optional", {
                "NULL": b"\x00" if null_first else b"\x02",
                "OTHER": b"\x02" if null_first else b"\x00",
                "W": _compile(other),
            }
    return "call", {"W": _compile(schema)}


def _inline_kind(schema: Any) -> tuple[str, dict[str, Any]] | None:
    if schema == "string":
        return "string", {}
    if schema in ("long", "int"):
        low, high = (_LONG_MIN, _LONG_MAX) if schema == "long" else (_INT_MIN, _INT_MAX)
        return "long", {"LO": low, "HI": high}
    if isinstance(schema, dict) and schema.get("type") == "enum" and "logicalType" not in schema:
        return "enum", {"E": {s: _length(n) for n, s in enumerate(schema["symbols"])}}
    if isinstance(schema, dict) and schema.get("logicalType") is not None:
        logical = (str(schema.get("type")), str(schema["logicalType"]))
        if logical == ("string", "uuid"):
            return "uuid", {}
        if logical == ("long", "timestamp-millis"):
            return "timestamp", {"LO": _LONG_MIN, "HI": _LONG_MAX}
    return None


def _generate(fields: list[dict[str, Any]]) -> Callable[[Mapping[str, Any]], bytes]:
    namespace: dict[str, Any] = {
        "Unsupported": Unsupported,
        "UUID": uuid.UUID,
        "datetime": datetime,
        "EPOCH": _EPOCH,
        "ONE_MS": _ONE_MS,
        "S": _SMALL,
        "varint": _varint,
        "join": b"".join,
    }
    lines = ["def write(r):\n    parts = []\n    a = parts.append\n"]
    for i, field in enumerate(fields):
        kind, names = _field_kind(field["type"])
        namespace[f"N{i}"] = field["name"]
        namespace.update({f"{name}{i}": value for name, value in names.items()})
        # A missing field raises KeyError (fastavro may write its default): the caller falls back.
        lines.append(f"    v = r[N{i}]\n{_TEMPLATES[kind].format(i=i)}")
    lines.append("    return join(parts)\n")
    exec(compile("".join(lines), "<avro_write generated>", "exec"), namespace)  # noqa: S102
    write: Callable[[Mapping[str, Any]], bytes] = namespace["write"]
    return write
