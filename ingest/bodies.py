"""Request bodies into events: the type's pydantic model validates, the server sets event ids.

A single post's body is the event's fields without ``event_id``; a batch's is
``{"events": [...]}``. Errors carry field paths (``["body", "events", 3, "user_id"]``) and
never the submitted values, so responses and logs hold no payload.

Public names: ``BadBodyError``, ``parse_events``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from schemas import Event

__all__ = ["BadBodyError", "parse_events"]

ErrorList = list[dict[str, Any]]


class BadBodyError(Exception):
    """The body is not acceptable: ``errors`` say where and why (HTTP 422)."""

    def __init__(self, detail: str, errors: ErrorList) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


def _error(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _validate_one(
    model: type[Event], item: Any, loc: list[str | int], event_id: Any, errors: ErrorList
) -> Event | None:
    if not isinstance(item, dict):
        errors.append(_error(loc, "an event must be a JSON object", "object_type"))
        return None
    if "event_id" in item:
        errors.append(
            _error(
                [*loc, "event_id"],
                "event_id is set by the server from the Idempotency-Key; leave it out",
                "extra_forbidden",
            )
        )
        return None
    try:
        return model.model_validate({**item, "event_id": event_id})
    except ValidationError as exc:
        errors.extend(
            _error([*loc, *e["loc"]], e["msg"], e["type"])
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        return None


def parse_events(
    model: type[Event],
    payload: Any,
    *,
    batch: bool,
    max_batch: int,
    event_id: Callable[[int], Any],
) -> list[Event]:
    """The events of a parsed JSON body, with ``event_id(index)``; raises ``BadBodyError``."""
    errors: ErrorList = []
    if not batch:
        one = _validate_one(model, payload, ["body"], event_id(0), errors)
        if one is None:
            raise BadBodyError(f"the body is not a valid {model.event_type}", errors)
        return [one]
    items = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or set(payload) != {"events"} or not isinstance(items, list):
        raise BadBodyError(
            'a batch body is {"events": [...]}',
            [_error(["body", "events"], "a list of events is required", "list_type")],
        )
    if not 1 <= len(items) <= max_batch:
        raise BadBodyError(
            f"a batch holds 1 to {max_batch} events, not {len(items)}",
            [_error(["body", "events"], f"1 to {max_batch} events", "too_long")],
        )
    events = [
        _validate_one(model, item, ["body", "events", index], event_id(index), errors)
        for index, item in enumerate(items)
    ]
    if errors:
        raise BadBodyError(f"the batch holds invalid {model.event_type} events", errors)
    return [event for event in events if event is not None]
