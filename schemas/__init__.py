"""The event contract: Avro schemas (``schemas/avro/``), event models, codec and schema store.

Imports nothing of oncepipe's own, so producers, consumers and tools can all depend on it.

Public names: the re-exports below.
"""

from __future__ import annotations

from schemas.codec import Codec, Decoded, Encoded
from schemas.compat import check_compatibility, check_history
from schemas.errors import (
    BadMagicError,
    CorruptBodyError,
    IncompatibleSchemaError,
    PayloadTooLargeError,
    SchemaError,
    UnknownFingerprintError,
    ValidationFailedError,
)
from schemas.models import EVENT_MODELS, ClickAction, ClickEvent, Event
from schemas.store import SchemaStore

__all__ = [
    "EVENT_MODELS",
    "BadMagicError",
    "ClickAction",
    "ClickEvent",
    "Codec",
    "CorruptBodyError",
    "Decoded",
    "Encoded",
    "Event",
    "IncompatibleSchemaError",
    "PayloadTooLargeError",
    "SchemaError",
    "SchemaStore",
    "UnknownFingerprintError",
    "ValidationFailedError",
    "check_compatibility",
    "check_history",
]
