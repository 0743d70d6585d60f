"""The one exception tree. A class says what the caller should do about it.

- ``RetriableError``: roll back, back off with jitter, retry; never dead-letter.
- ``PoisonError``: this message can never succeed; dead-letter it and move on.
- ``FencedError``: this worker no longer owns the partition; roll back, reload offsets, seek.
- ``ConfigError``: the configuration or the command line is wrong; fix it and start again.

Every error oncepipe defines derives from ``OncepipeError``: the schema errors
(``schemas.SchemaError`` and the Avro and catalog errors), the dead-letter format error, the
unreadable-headers error and the classes below. The root itself is defined in
``schemas.errors`` and re-exported here: ``schemas`` sits at the bottom of the import graph and
imports nothing of ours, so the root has to live there for its errors to share it. What each
class means for a record (retry, dead-letter, stop) is decided in one place,
``consumers.classify``; the command line reports any ``OncepipeError`` as one line.

Public names: the classes below, and ``first_line`` (an error in one line for a log or a
message).
"""

from __future__ import annotations

from schemas import OncepipeError

__all__ = [
    "BrokerError",
    "ConfigError",
    "DatabaseUnavailableError",
    "FencedError",
    "OncepipeError",
    "PoisonError",
    "RetriableError",
    "first_line",
]


class ConfigError(OncepipeError):
    """Settings or arguments are invalid; the message names the setting and a fix."""


class RetriableError(OncepipeError):
    """A dependency failed transiently: roll back and retry with backoff."""


class DatabaseUnavailableError(RetriableError):
    """PostgreSQL could not be reached or dropped the connection."""


class BrokerError(OncepipeError):
    """A Kafka client error, keeping librdkafka's code and its retriable/fatal flags."""

    def __init__(self, message: str, *, code: int, name: str, retriable: bool, fatal: bool) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.retriable = retriable
        self.fatal = fatal


class PoisonError(OncepipeError):
    """The message can never be processed; it belongs in the dead-letter topic."""


class FencedError(OncepipeError):
    """A stored offset changed under us: another consumer owns the partition now."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its class name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
