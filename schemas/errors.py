"""The root of every oncepipe error, and why a message could not be turned into an event.

``OncepipeError`` is the one root of the project's exceptions. It lives here, at the bottom of
the import graph, because ``schemas`` imports nothing of the other packages: its own errors can
derive from the root only if the root is defined in ``schemas``. ``oncepipe.errors`` re-exports
it and holds the rest of the tree (what the caller should do about a failure).

Each ``SchemaError`` class names one kind of bad input.

Every ``SchemaError`` is poison for the consumer (the message can never decode as it is, so it
is dead-lettered with its original bytes), except that ``UnknownFingerprintError`` may be
transient: the producer of a new version may not have registered it yet.

``stage`` says where it failed, for the dead-letter headers: ``decode`` or ``validate``.

Public names: the classes below.
"""

from __future__ import annotations

__all__ = [
    "BadMagicError",
    "CorruptBodyError",
    "IncompatibleSchemaError",
    "OncepipeError",
    "PayloadTooLargeError",
    "SchemaError",
    "UnknownFingerprintError",
    "ValidationFailedError",
]


class OncepipeError(Exception):
    """Root of every error oncepipe raises on purpose (the tree: ``oncepipe.errors``)."""


class SchemaError(OncepipeError, ValueError):
    """Root of the codec's errors: the message's bytes cannot become a valid event.

    Also a ``ValueError``, as it always was: callers catch bad input as one.
    """

    stage: str = "decode"

    def __init__(self, message: str, *, fingerprint: str | None = None) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class PayloadTooLargeError(SchemaError):
    """The message is over the size limit; it was refused before any decoding."""


class BadMagicError(SchemaError):
    """The message does not start with the Avro single-object marker ``C3 01``."""


class UnknownFingerprintError(SchemaError):
    """No shipped schema and no row of the schema store has the writer's fingerprint."""


class IncompatibleSchemaError(SchemaError):
    """The writer schema is known, but the newest reader schema cannot resolve it."""


class CorruptBodyError(SchemaError):
    """The Avro body is truncated, has trailing bytes, or holds values no decoder accepts."""


class ValidationFailedError(SchemaError):
    """The body is valid Avro but the event model rejects it; ``paths`` name the fields."""

    stage = "validate"

    def __init__(
        self, message: str, *, fingerprint: str | None = None, paths: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, fingerprint=fingerprint)
        self.paths = paths
