"""Record sizes as the producer client counts them, and fitting a dead letter under a limit.

librdkafka refuses a record whose key, value and serialized headers (plus a fixed framing
allowance) exceed ``message.max.bytes``; ``record_size`` counts the same way, so the relay can
tell before sending. A dead letter is the source record (at most the source topic's limit)
plus the ``dlq.*`` failure context; when that context does not fit, ``fit_dead_letter`` trims
the least important parts of it (stack trace first, then the error message) and says so in a
``dlq.trimmed`` header. The original key, value and headers are never touched.

Public names: ``HeaderValue``, ``TRIMMED``, ``record_size``, ``surely_fits``,
``fit_dead_letter``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["TRIMMED", "HeaderValue", "fit_dead_letter", "record_size", "surely_fits"]

HeaderValue = str | bytes | None

# Names written by consumers/dlq/headers.py (producers never imports consumers).
_CONTEXT_PREFIX = "dlq."
_STACKTRACE = "dlq.stacktrace"
_ERROR_MESSAGE = "dlq.error.message"
TRIMMED = "dlq.trimmed"
"""Names the failure-context headers the relay trimmed to fit the dead letter, comma-separated."""

# librdkafka's per-record framing allowance in the size check (MessageSet v2 worst case).
_RECORD_OVERHEAD = 36
# What is left of an error message that had to be cut: the start says what went wrong.
_SHORT_MESSAGE_BYTES = 256


def _varint_size(n: int) -> int:
    zigzag = n << 1  # lengths are zig-zag encoded signed varints; n is never negative here
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _length(value: HeaderValue) -> int:
    if value is None:
        return 0
    return len(value.encode()) if isinstance(value, str) else len(value)


def _header_size(name: str, value: HeaderValue) -> int:
    name_len, value_len = len(name.encode()), _length(value)
    return _varint_size(name_len) + name_len + _varint_size(value_len) + value_len


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, HeaderValue]]
) -> int:
    """The size librdkafka checks against ``message.max.bytes`` (an upper bound)."""
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    return size + sum(_header_size(name, raw) for name, raw in headers)


def surely_fits(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, HeaderValue]], limit: int
) -> bool:
    """True when the record fits ``limit`` by a cheap upper bound (4 bytes per character).

    The relay checks every row; nearly all are far below the limit, and this spares them the
    byte-exact count.
    """
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, raw in headers:
        size += 4 * len(name) + (4 * len(raw) if raw is not None else 0) + 10
    return size <= limit


def _is_dead_letter(headers: Sequence[tuple[str, HeaderValue]]) -> bool:
    return any(name.startswith(_CONTEXT_PREFIX) for name, _ in headers)


def _cut(value: HeaderValue, limit: int) -> bytes:
    raw = value.encode() if isinstance(value, str) else (value or b"")
    return raw[:limit].decode("utf-8", "ignore").encode()  # never half a character


def fit_dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, HeaderValue]],
    limit: int,
) -> list[tuple[str, HeaderValue]] | None:
    """Headers that make the record fit ``limit``, or None when no trimming can.

    Only a dead letter's own failure context is trimmed, least important first: the stack
    trace is dropped, then the error message is cut to its first 256 bytes, then dropped.
    """
    fitted = list(headers)
    if record_size(key, value, fitted) <= limit:
        return fitted
    if not _is_dead_letter(fitted):
        return None
    trimmed: list[str] = []
    steps: list[tuple[str, int | None]] = [
        (_STACKTRACE, None),
        (_ERROR_MESSAGE, _SHORT_MESSAGE_BYTES),
        (_ERROR_MESSAGE, None),
    ]
    for name, keep in steps:
        if not any(n == name for n, _ in fitted):
            continue
        if keep is None:
            fitted = [(n, raw) for n, raw in fitted if n != name]
        else:
            fitted = [(n, _cut(raw, keep) if n == name else raw) for n, raw in fitted]
        if name not in trimmed:
            trimmed.append(name)
        marked = [(n, raw) for n, raw in fitted if n != TRIMMED]
        marked.append((TRIMMED, ",".join(trimmed)))
        if record_size(key, value, marked) <= limit:
            return marked
    return None
