"""Event models generated from an ``.avsc``: for types known only by their schema files.

A type found on ``ONCEPIPE_SCHEMA_PATH`` with no model written for it still needs one, so that
the codec validates its events and generic tools (``oncepipe dlq show``, ``schema list``, a
handler reading ``inbound.event``) see the same frozen ``Event`` as for any other type. The
model mirrors the newest version: Avro primitives and logical types become their Python
types, unions with ``null`` become optional, named records become plain dicts.

The Kafka key is the field named by the record's ``"oncepipe.key_field"`` attribute (Avro
keeps unknown attributes and the fingerprint ignores them), else ``event_id``.

Public names: ``KEY_FIELD_ATTRIBUTE``, ``model_from_schema``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any, Literal

from pydantic import create_model

from schemas.avro_io import AvroSchema
from schemas.models import Event, UtcMillis

__all__ = ["KEY_FIELD_ATTRIBUTE", "model_from_schema"]

KEY_FIELD_ATTRIBUTE = "oncepipe.key_field"

_PRIMITIVES: dict[str, Any] = {
    "null": None,
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "bytes": bytes,
    "string": str,
}
_LOGICAL: dict[str, Any] = {
    "uuid": uuid.UUID,
    "timestamp-millis": UtcMillis,
    "timestamp-micros": dt.datetime,
    "date": dt.date,
    "time-millis": dt.time,
    "time-micros": dt.time,
    "decimal": decimal.Decimal,
}


def model_from_schema(schema: AvroSchema) -> type[Event]:
    """A frozen ``Event`` subclass whose fields are the record's fields, in their order."""
    document = json.loads(schema.text)
    fields: dict[str, Any] = {}
    names = [field["name"] for field in document["fields"]]
    for field in document["fields"]:
        annotation = _python_type(field["type"])
        if "default" in field:
            fields[field["name"]] = (annotation, field["default"])
        else:
            fields[field["name"]] = (annotation, ...)
    key_field = document.get(KEY_FIELD_ATTRIBUTE, "event_id")
    if key_field not in names:
        raise ValueError(
            f"{schema.name}: {KEY_FIELD_ATTRIBUTE} names {key_field!r}, which is not a field"
        )
    model = create_model(
        schema.name,
        __base__=Event,
        __module__=__name__,
        __doc__=document.get("doc") or f"{schema.name}, generated from its newest .avsc.",
        **fields,
    )
    # ClassVars are set after creation: create_model would take them for fields.
    model.event_type = schema.name
    model.key_field = key_field
    return model


def _python_type(avro: Any) -> Any:  # noqa: PLR0911 - one return per Avro kind
    if isinstance(avro, str):
        return _PRIMITIVES.get(avro, dict[str, Any])  # a named type: a record, enum or fixed
    if isinstance(avro, list):
        branches = [_python_type(branch) for branch in avro if branch != "null"]
        if not branches:
            return None
        union = branches[0] if len(branches) == 1 else _union(branches)
        return _union([union, None]) if "null" in avro else union
    logical = _LOGICAL.get(avro.get("logicalType", ""))
    if logical is not None:
        return logical
    kind = avro["type"]
    if kind == "enum":
        return Literal[tuple(avro["symbols"])]
    if kind == "array":
        return list[_python_type(avro["items"])]  # type: ignore[misc]
    if kind == "map":
        return dict[str, _python_type(avro["values"])]  # type: ignore[misc]
    if kind == "fixed":
        return bytes
    if kind == "record":
        return dict[str, Any]
    return _python_type(kind)


def _union(branches: list[Any]) -> Any:
    union = branches[0]
    for branch in branches[1:]:
        union = union | branch
    return union
