"""One dead letter made fit to show: personal-data fields redacted everywhere they appear.

Fields named in ``ONCEPIPE_CONSOLE_REDACT_FIELDS`` are replaced in the decoded event (at any
depth), in the headers (by name), and their values are blanked out of the key, the error
message and the stack trace. A value that does not decode is not dumped when fields are
redacted: its bytes may hold them.

Public names: ``REDACTED``, ``Shown``, ``shown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumers.dlq import DeadLetter, DecodedPayload, escape, fingerprint_of, hex_dump

__all__ = ["REDACTED", "Shown", "shown"]

REDACTED = "[redacted]"
# Shorter values would blank out unrelated text (a "1" in every offset).
_MIN_SCRUB = 3


@dataclass(frozen=True)
class Shown:
    """What the dead letter's page shows."""

    letter: DeadLetter
    fingerprint: str
    key: str | None
    headers: list[tuple[str, str]]
    event_type: str | None
    event: dict[str, Any] | None
    decode_error: str | None
    value_dump: str | None
    error_message: str
    stacktrace: str


def _redact(value: Any, names: frozenset[str], hidden: list[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if str(key).lower() in names:
                _collect(item, hidden)
                out[key] = REDACTED
            else:
                out[key] = _redact(item, names, hidden)
        return out
    if isinstance(value, list):
        return [_redact(item, names, hidden) for item in value]
    return value


def _collect(value: Any, hidden: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _collect(item, hidden)
    elif isinstance(value, list):
        for item in value:
            _collect(item, hidden)
    elif value is not None and len(str(value)) >= _MIN_SCRUB:
        hidden.append(str(value))


def _scrub(text: str, hidden: list[str]) -> str:
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def shown(letter: DeadLetter, payload: DecodedPayload, redact: frozenset[str]) -> Shown:
    """The page's view of ``letter`` and its decoded ``payload``, with ``redact`` applied."""
    hidden: list[str] = []
    event = _redact(payload.event, redact, hidden) if payload.event is not None else None
    headers = []
    for name, raw in letter.headers:
        if name.lower() in redact:
            if raw is not None:
                _collect(escape(raw), hidden)
            headers.append((escape(name), REDACTED))
        else:
            headers.append((escape(name), "(null)" if raw is None else escape(raw)))
    headers = [(name, _scrub(value, hidden)) for name, value in headers]
    dump = None
    if payload.error is not None:
        dump = "(not shown: redacted fields are configured)" if redact else hex_dump(letter.value)
    return Shown(
        letter=letter,
        fingerprint=fingerprint_of(letter),
        key=None if letter.key is None else _scrub(escape(letter.key), hidden),
        headers=headers,
        event_type=payload.event_type,
        event=event,
        decode_error=payload.error,
        value_dump=dump,
        error_message=_scrub(letter.error_message, hidden),
        stacktrace=_scrub(letter.stacktrace, hidden),
    )
