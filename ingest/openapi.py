"""The OpenAPI 3.1 document of the ingest API, generated from the registered event types.

Each type gets ``POST /v1/events/<Type>`` (its model's JSON Schema without ``event_id``) and
``POST /v1/events/<Type>/batch``; every status the server can answer is documented.

Public names: ``openapi_document``, ``KEY_PATTERN``.
"""

from __future__ import annotations

from typing import Any

from schemas import Event

__all__ = ["KEY_PATTERN", "openapi_document"]

KEY_PATTERN = r"^[!-~]{1,255}$"
"""An Idempotency-Key: 1 to 255 visible ASCII characters (a UUID v4 is the usual choice)."""

_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["event_type", "event_ids"],
    "properties": {
        "event_type": {"type": "string"},
        "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    },
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
_ERRORS = {
    "400": ("missing or malformed Idempotency-Key, or a body that is not JSON", {}),
    "401": ("no valid API key (Authorization: Bearer <key>)", {}),
    "403": ("the client is not granted this event type", {}),
    "408": ("the body did not arrive in time", {}),
    "409": ("a request with this Idempotency-Key is in flight; retry later", _RETRY_AFTER),
    "413": ("the body is over the size limit", {}),
    "415": ("the body is not application/json", {}),
    "422": ("invalid event(s), with field paths; or the key was used with another body", {}),
    "429": ("over the client's rate limit", _RETRY_AFTER),
    "503": ("the database is unavailable or slow; retry with the same key", _RETRY_AFTER),
}


def _body_schema(model: type[Event], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF, mode="validation")
    defs.update(schema.pop("$defs", {}))
    schema["properties"].pop("event_id", None)
    schema["required"] = [name for name in schema.get("required", []) if name != "event_id"]
    schema["title"] = f"{model.event_type}Body"
    return schema


def _operation(event_type: str, body_ref: str, batch: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {
            "description": "accepted (or, with Idempotent-Replayed: true, the stored response)",
            "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Accepted")}}},
        }
    }
    for status, (description, headers) in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
            **({"headers": headers} if headers else {}),
        }
    return {
        "operationId": f"post{event_type}{'Batch' if batch else ''}",
        "summary": f"Submit {'a batch of ' if batch else 'one '}{event_type}",
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "unique per logical request; send the same key on every retry",
                "schema": {"type": "string", "pattern": KEY_PATTERN},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": body_ref}}},
        },
        "responses": responses,
    }


def openapi_document(models: dict[str, type[Event]], max_batch: int) -> dict[str, Any]:
    """The OpenAPI document for ``models`` (event type -> model)."""
    schemas: dict[str, Any] = {"Accepted": _ACCEPTED, "Error": _ERROR}
    paths: dict[str, Any] = {}
    for event_type, model in sorted(models.items()):
        body = f"{event_type}Body"
        schemas[body] = _body_schema(model, schemas)
        schemas[f"{event_type}Batch"] = {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_batch,
                    "items": {"$ref": _REF.format(model=body)},
                }
            },
        }
        one = _operation(event_type, _REF.format(model=body), batch=False)
        many = _operation(event_type, _REF.format(model=f"{event_type}Batch"), batch=True)
        paths[f"/v1/events/{event_type}"] = {"post": one}
        paths[f"/v1/events/{event_type}/batch"] = {"post": many}
    return {
        "openapi": "3.1.0",
        "info": {"title": "oncepipe ingest", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
