"""A dead letter's value for people: the decoded event when it decodes, else a hex dump.

Public names: ``DecodedPayload``, ``decode_payload``, ``hex_dump``, ``escape``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas import Codec, SchemaError

__all__ = ["DecodedPayload", "decode_payload", "escape", "hex_dump"]

HEX_DUMP_BYTES = 256


@dataclass(frozen=True)
class DecodedPayload:
    """The event in a value, or why there is none."""

    event_type: str | None
    event: dict[str, Any] | None
    error: str | None

    @property
    def event_id(self) -> str | None:
        """The decoded event's id, when it decoded."""
        value = (self.event or {}).get("event_id")
        return str(value) if value is not None else None


def decode_payload(codec: Codec, value: bytes | None) -> DecodedPayload:
    """Decode and validate ``value``; a ``SchemaError`` becomes the ``error``, never raised."""
    try:
        decoded = codec.decode(value)
    except SchemaError as exc:
        return DecodedPayload(None, None, f"{type(exc).__name__}: {exc}")
    try:
        model = codec.to_model(decoded)
    except SchemaError as exc:
        # Valid Avro the model refuses: the raw record still helps whoever investigates.
        return DecodedPayload(decoded.event_type, decoded.record, f"{type(exc).__name__}: {exc}")
    return DecodedPayload(decoded.event_type, model.model_dump(mode="json"), None)


def hex_dump(data: bytes | None, limit: int = HEX_DUMP_BYTES) -> str:
    """``xxd``-style lines (offset, 16 hex bytes, ASCII) of the first ``limit`` bytes."""
    if data is None:
        return "(no value: a tombstone)"
    lines = []
    for start in range(0, min(len(data), limit), 16):
        row = data[start : min(start + 16, limit)]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{start:08x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines) if lines else "(empty value)"


def _escaped_char(char: str) -> str:
    point = ord(char)
    if 0xDC80 <= point <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{point - 0xDC00:02x}"
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def escape(raw: bytes | str) -> str:
    r"""Printable text of header names, values and keys: UTF-8 as it is, else ``\xNN`` escapes.

    Bytes that are not UTF-8, control characters (NUL included) and the backslash itself are
    escaped, so the text is unambiguous and safe on a terminal.
    """
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escaped_char, text))
