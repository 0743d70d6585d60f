"""The codec: events to Avro single-object bytes and back, for producers and consumers.

Wire format (Avro single-object encoding): ``C3 01``, the 8-byte CRC-64-AVRO fingerprint of the
writer schema, then the Avro binary body. Producers write the newest shipped version of an
event type; consumers read any known writer version into the newest one (schema resolution),
so old and new producers coexist.

Decoding a message, in this order (each step refuses with its own ``SchemaError``):

1. size: over ``max_payload_bytes`` is refused before any byte is parsed;
2. magic: the first two bytes must be ``C3 01``;
3. fingerprint: a shipped version, else one the schema store knows (fetched once through
   ``lookup``, checked for compatibility and for shapes a body could abuse (``schemas.shape``),
   then cached), else unknown;
4. body: decoded with the writer schema into the newest reader schema, every byte consumed;
5. model: validated into the frozen pydantic model (``to_model``).

Public names: ``Codec``, ``Encoded``, ``Decoded``, ``DEFAULT_MAX_PAYLOAD_BYTES``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.avro_io import (
    MAGIC,
    AvroDataError,
    AvroSchema,
    InvalidSchemaError,
    read_body,
    write_body,
)
from schemas.avro_io import load_schema as parse_schema_text
from schemas.catalog import CatalogError, ModelMismatchError, SchemaVersion
from schemas.checks import history_problems
from schemas.compat import check_compatibility
from schemas.errors import (
    BadMagicError,
    CorruptBodyError,
    IncompatibleSchemaError,
    PayloadTooLargeError,
    SchemaError,
    UnknownFingerprintError,
    ValidationFailedError,
)
from schemas.models import EVENT_MODELS, Event
from schemas.registry import known_types, load_entry_points, model_mismatch
from schemas.shape import unbounded_shapes

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "Codec", "Decoded", "Encoded"]

DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576
_HEADER_SIZE = 10
_SHOWN_INPUT_CHARS = 60

Lookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event ready for Kafka: value, key and the facts its headers carry."""

    value: bytes
    fingerprint: str
    event_type: str
    event_id: uuid.UUID
    key: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded body, resolved into the newest reader schema but not yet validated."""

    event_type: str
    fingerprint: str
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Writer:
    event_type: str
    schema: AvroSchema
    reader: AvroSchema | None
    """The newest version to resolve into; None when the writer is that version."""


class Codec:
    """Encodes event models and decodes any known writer version; load once, share freely."""

    def __init__(
        self,
        versions: Sequence[SchemaVersion],
        models: Mapping[str, type[Event]] = EVENT_MODELS,
        *,
        lookup: Lookup | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_payload_bytes < _HEADER_SIZE:
            raise ValueError(f"max_payload_bytes={max_payload_bytes} cannot hold even a header")
        self._lookup = lookup
        self._max = max_payload_bytes
        self._models = dict(models)
        self._writers: dict[bytes, _Writer] = {}
        self._shipped: dict[str, _Writer] = {}
        self._newest: dict[str, AvroSchema] = {}
        self._by_class: dict[type, AvroSchema] = {}
        self._rejected: dict[bytes, str] = {}
        by_type: dict[str, list[SchemaVersion]] = {}
        for version in versions:
            by_type.setdefault(version.event_type, []).append(version)
        for event_type, history in by_type.items():
            self._add_event_type(event_type, sorted(history, key=lambda v: v.version))

    @classmethod
    def load(
        cls,
        *,
        lookup: Lookup | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> Codec:
        """The codec of every known type; ``lookup(fingerprint)`` finds other writer versions.

        Known types: the shipped ones, those registered so far (``schemas.event_type``,
        ``register_directories``) and those of the ``oncepipe.event_types`` entry points,
        imported here. Build it after importing the modules that declare your types.
        """
        load_entry_points()
        types = known_types().values()
        return cls(
            [version for entry in types for version in entry.versions],
            {entry.event_type: entry.model for entry in types},
            lookup=lookup,
            max_payload_bytes=max_payload_bytes,
        )

    # -- producing ---------------------------------------------------------------------------

    def encode(self, event: BaseModel) -> Encoded:
        """Encode ``event`` with the newest version of its type."""
        # By class: an isinstance check against the pydantic base (an ABC) costs more.
        schema = self._by_class.get(event.__class__)
        if schema is None:
            schema = self._schema_of(event)
        return self._encode(event, schema)  # type: ignore[arg-type]  # an Event, checked

    def encode_with(self, event: BaseModel, fingerprint: str) -> Encoded:
        """Encode ``event`` with an older shipped version (to test mixed producers)."""
        writer = self._shipped.get(fingerprint)
        if writer is None:
            raise UnknownFingerprintError(
                f"encode_with({fingerprint!r}): no shipped schema has this fingerprint; "
                f"choose one of {sorted(self._shipped)}",
                fingerprint=fingerprint,
            )
        if not isinstance(event, Event) or writer.event_type != event.event_type:
            raise TypeError(
                f"{fingerprint} is a {writer.event_type} schema, not one for {type(event).__name__}"
            )
        return self._encode(event, writer.schema)

    def encode_batch(self, events: Sequence[BaseModel]) -> list[Encoded]:
        """Encode each event with the newest version of its type."""
        return [self.encode(event) for event in events]

    def _schema_of(self, event: BaseModel) -> AvroSchema:
        schema = self._newest.get(event.event_type) if isinstance(event, Event) else None
        if schema is None:
            raise TypeError(
                f"{type(event).__name__} is not an event model of a known type: decorate it "
                "with @schemas.event_type(<its .avsc directory>) and import its module before "
                "Codec.load()"
            )
        self._by_class[event.__class__] = schema
        return schema

    def writer_schemas(self) -> dict[str, tuple[str, str]]:
        """Every shipped version as fingerprint -> (event type, schema JSON), for the store."""
        return {fp: (w.event_type, w.schema.text) for fp, w in self._shipped.items()}

    def newest_fingerprint(self, event_type: str) -> str:
        """The fingerprint producers write ``event_type`` with."""
        try:
            return self._newest[event_type].fingerprint
        except KeyError:
            raise KeyError(f"no shipped schema for event type {event_type!r}") from None

    # -- consuming ---------------------------------------------------------------------------

    def decode(self, value: bytes | None) -> Decoded:
        """Decode one message value into the newest reader schema; raises ``SchemaError``s."""
        return self._decode(value, None)

    def to_model(self, decoded: Decoded) -> Event:
        """Validate a decoded record into its event model; raises ``ValidationFailedError``."""
        model = self._models.get(decoded.event_type)
        if model is None:
            raise ValidationFailedError(
                f"no event model for type {decoded.event_type!r}", fingerprint=decoded.fingerprint
            )
        try:
            return model.model_validate(decoded.record)
        except ValidationError as exc:
            raise _validation_failed(decoded, exc) from exc

    def decode_batch(self, values: Sequence[bytes | None]) -> list[BaseModel | SchemaError]:
        """Decode and validate each value; a failure takes its slot instead of being raised.

        Errors other than ``SchemaError`` (the schema store unreachable) are raised: they are
        transient and must not turn a good message into a dead letter.
        """
        misses: set[bytes] = set()
        decode, to_model = self._decode, self.to_model
        out: list[BaseModel | SchemaError] = []
        append = out.append
        for value in values:
            try:
                append(to_model(decode(value, misses)))
            except SchemaError as exc:
                append(exc)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _add_event_type(self, event_type: str, history: list[SchemaVersion]) -> None:
        model = self._models.get(event_type)
        if model is None:
            raise CatalogError(f"{history[0].path.name}: no event model named {event_type}")
        newest = history[-1].schema
        mismatch = model_mismatch(model, history[-1])
        if mismatch is not None:
            raise ModelMismatchError(mismatch)
        problems = history_problems(history)
        if problems:
            raise CatalogError(f"{event_type} versions are incompatible: {'; '.join(problems)}")
        for version in history:
            reader = None if version.schema is newest else newest
            writer = _Writer(event_type, version.schema, reader)
            self._writers[version.schema.header[2:]] = writer
            self._shipped[version.schema.fingerprint] = writer
        self._newest[event_type] = newest

    def _encode(self, event: Event, schema: AvroSchema) -> Encoded:
        event_type = event.event_type
        try:
            # The model's own field dict: its values are already the types fastavro writes.
            body = write_body(schema, event.__dict__)
        except AvroDataError as exc:
            raise ValidationFailedError(
                f"{event_type} {event.event_id} does not fit schema "
                f"{schema.fingerprint}: {exc}; build events through validation, not "
                "model_construct",
                fingerprint=schema.fingerprint,
            ) from exc
        value = schema.header + body
        if len(value) > self._max:
            raise PayloadTooLargeError(
                f"{event_type} encodes to {len(value):,} bytes, over the {self._max:,}-byte "
                "limit consumers accept; shrink the event (context, ids) or raise the limit "
                "everywhere",
                fingerprint=schema.fingerprint,
            )
        key = str(getattr(event, event.key_field)).encode()
        return Encoded(value, schema.fingerprint, event_type, event.event_id, key)

    def _decode(self, value: bytes | None, misses: set[bytes] | None) -> Decoded:
        if value is None:
            raise BadMagicError("the message has no value (a tombstone); events always have one")
        size = len(value)
        if size > self._max:
            raise PayloadTooLargeError(
                f"the message is {size:,} bytes, over the {self._max:,}-byte limit; it was not "
                "decoded. If such events are legitimate raise max_payload_bytes, else fix the "
                "producer"
            )
        if value[:2] != MAGIC:
            raise BadMagicError(_bad_magic_message(value))
        if size < _HEADER_SIZE:
            raise CorruptBodyError(
                f"the message is {size} bytes, shorter than the 10-byte single-object header; "
                "it was truncated in transit or by its producer"
            )
        key = value[2:_HEADER_SIZE]
        writer = self._writers.get(key) or self._unknown(key, misses)
        try:
            record = read_body(value, _HEADER_SIZE, writer.schema, writer.reader)
        except AvroDataError as exc:
            raise CorruptBodyError(
                f"{writer.event_type} body ({size - _HEADER_SIZE} bytes, writer schema "
                f"{writer.schema.fingerprint}) is truncated or corrupt: {exc}; the bytes were "
                "damaged, or written with another schema than the fingerprint names",
                fingerprint=writer.schema.fingerprint,
            ) from exc
        return Decoded(writer.event_type, writer.schema.fingerprint, record)

    def _unknown(self, key: bytes, misses: set[bytes] | None) -> _Writer:
        fingerprint = key.hex()
        if key in self._rejected:
            raise IncompatibleSchemaError(self._rejected[key], fingerprint=fingerprint)
        # A store outage raises from lookup() and propagates: it is transient, not poison.
        text = None
        if self._lookup is not None and (misses is None or key not in misses):
            text = self._lookup(fingerprint)
        if text is None:
            if misses is not None:
                misses.add(key)
            where = "nor in the schema store" if self._lookup else "(no schema store configured)"
            raise UnknownFingerprintError(
                f"writer schema {fingerprint} is neither shipped with this consumer {where}; "
                "the producer must register its schemas at start-up (SchemaStore.register), "
                "or deploy a schemas package that ships this version",
                fingerprint=fingerprint,
            )
        writer = self._adopt(key, fingerprint, text)
        self._writers[key] = writer
        return writer

    def _adopt(self, key: bytes, fingerprint: str, text: str) -> _Writer:
        """Accept a schema from the store as a writer, or say why it cannot be one."""
        try:
            schema = parse_schema_text(text)
        except InvalidSchemaError as exc:
            raise IncompatibleSchemaError(
                f"the schema store's row for {fingerprint} is unusable ({exc}); delete it, the "
                "producer registers its schema again when it starts",
                fingerprint=fingerprint,
            ) from exc
        if schema.fingerprint != fingerprint:
            raise IncompatibleSchemaError(
                f"the schema store's row for {fingerprint} holds a schema whose fingerprint is "
                f"{schema.fingerprint}; the row is corrupt: delete it, the producer registers "
                "its schema again when it starts",
                fingerprint=fingerprint,
            )
        newest = self._newest.get(schema.name)
        hazards = unbounded_shapes(schema.writing)
        if hazards:
            problem = (
                f"writer schema {fingerprint} ({schema.name}) has {'; '.join(hazards)}; a "
                "consumer refuses such writers so that no record can stall or crash it: give "
                "the producer's schema bounded nesting and array items that take bytes"
            )
        elif newest is None:
            problem = (
                f"writer schema {fingerprint} is for event type {schema.name}, which this "
                "consumer has no model for; deploy a schemas package that knows it"
            )
        else:
            found = check_compatibility(schema.text, newest.text)
            problem = (
                f"writer schema {fingerprint} ({schema.name}) cannot be read as the newest "
                f"shipped version {newest.fingerprint}: {'; '.join(found)}; the producer broke "
                "compatibility: revert it, or ship a reader version that can read it"
            )
            if not found:
                return _Writer(schema.name, schema, newest)
        # Fingerprints name their schema forever, so the verdict never changes: keep it.
        self._rejected[key] = problem
        raise IncompatibleSchemaError(problem, fingerprint=fingerprint)


def _bad_magic_message(value: bytes) -> str:
    start = value[:4].hex(" ") or "nothing"
    hint = ""
    if value[:1] == b"\x00":
        hint = " (it looks like the Confluent Schema Registry wire format)"
    elif value[:1] in (b"{", b"["):
        hint = " (it looks like JSON)"
    return (
        f"the message starts with {start}, not the Avro single-object marker c3 01{hint}; it "
        "was not written by an oncepipe producer: fix the producer to encode with schemas.Codec"
    )


def _validation_failed(decoded: Decoded, exc: ValidationError) -> ValidationFailedError:
    paths = []
    details = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "(record)"
        paths.append(path)
        shown = repr(error.get("input"))
        if len(shown) > _SHOWN_INPUT_CHARS:
            shown = shown[:_SHOWN_INPUT_CHARS] + "..."
        details.append(f"{path}: {error['msg']} (got {shown})")
    return ValidationFailedError(
        f"{decoded.event_type} (writer schema {decoded.fingerprint}) is valid Avro but fails "
        f"the model: {'; '.join(details)}; fix the producer that wrote it",
        fingerprint=decoded.fingerprint,
        paths=tuple(paths),
    )
