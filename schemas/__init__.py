"""The event contract: what every producer, consumer and tool agrees on.

- events: the models handlers receive (``Event``, ``ClickEvent``, ``EVENT_MODELS``,
  ``UtcMillis`` and ``Identifier`` for fields);
- your own types: ``event_type(directory)`` registers a model with its ``.avsc`` versions;
  ``register_directories`` and ``register_schema_path`` (``ONCEPIPE_SCHEMA_PATH``),
  ``load_entry_points`` (the ``oncepipe.event_types`` group, ``ENTRY_POINT_GROUP``),
  ``known_types`` (``EventTypeEntry``);
  ``ModelMismatchError`` and ``EventTypeConflictError`` refuse a bad registration;
- schema files: ``load_catalog`` (a directory's ``SchemaVersion``s), ``snake_case``,
  ``SCHEMA_DIR``;
- bytes: the ``Codec`` (Avro single-object encoding of the shipped ``schemas/avro/`` versions,
  ``Encoded``/``Decoded``) and the ``SchemaStore`` of versions learnt at run time;
- evolution: ``check_compatibility`` and ``check_history`` (Avro schema resolution rules),
  ``history_problems`` (those plus unsafe shapes, for one type's versions), ``versions_by_type``;
- bad input: ``SchemaError`` and one subclass per kind, ``CatalogError`` for a bad shipped set,
  ``AvroDataError``/``InvalidSchemaError`` from the Avro layer; all derive from
  ``OncepipeError``, the root of every oncepipe error, defined here at the bottom of the
  import graph so that the contract too can derive from it;
- topics: ``topic_for`` (``events.<name>``), ``dlq_topic_for`` (``<topic>.dlq``) and
  ``topic_name_problem`` (Kafka's rule for a legal name);
- ids: ``uuid7`` (event ids that carry their time, for a flat inbox look-up), ``uuid7_time``.

Imports nothing of oncepipe's own, so producers, consumers and tools can all depend on it.
"""

from __future__ import annotations

from schemas.avro_io import AvroDataError, InvalidSchemaError
from schemas.catalog import (
    SCHEMA_DIR,
    CatalogError,
    EventTypeConflictError,
    ModelMismatchError,
    SchemaVersion,
    load_catalog,
    snake_case,
)
from schemas.checks import history_problems, versions_by_type
from schemas.codec import DEFAULT_MAX_PAYLOAD_BYTES, Codec, Decoded, Encoded
from schemas.compat import check_compatibility, check_history
from schemas.errors import (
    BadMagicError,
    CorruptBodyError,
    IncompatibleSchemaError,
    OncepipeError,
    PayloadTooLargeError,
    SchemaError,
    UnknownFingerprintError,
    ValidationFailedError,
)
from schemas.ids import uuid7, uuid7_time
from schemas.models import EVENT_MODELS, ClickAction, ClickEvent, Event, Identifier, UtcMillis
from schemas.registry import (
    ENTRY_POINT_GROUP,
    EventTypeEntry,
    event_type,
    known_types,
    load_entry_points,
    register_directories,
    register_schema_path,
)
from schemas.store import SchemaStore
from schemas.topics import dlq_topic_for, topic_for, topic_name_problem

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ENTRY_POINT_GROUP",
    "EVENT_MODELS",
    "SCHEMA_DIR",
    "AvroDataError",
    "BadMagicError",
    "CatalogError",
    "ClickAction",
    "ClickEvent",
    "Codec",
    "CorruptBodyError",
    "Decoded",
    "Encoded",
    "Event",
    "EventTypeConflictError",
    "EventTypeEntry",
    "Identifier",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
    "ModelMismatchError",
    "OncepipeError",
    "PayloadTooLargeError",
    "SchemaError",
    "SchemaStore",
    "SchemaVersion",
    "UnknownFingerprintError",
    "UtcMillis",
    "ValidationFailedError",
    "check_compatibility",
    "check_history",
    "dlq_topic_for",
    "event_type",
    "history_problems",
    "known_types",
    "load_catalog",
    "load_entry_points",
    "register_directories",
    "register_schema_path",
    "snake_case",
    "topic_for",
    "topic_name_problem",
    "uuid7",
    "uuid7_time",
    "versions_by_type",
]
