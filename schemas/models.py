"""Event models: what handlers receive once the bytes have been decoded and validated.

Each model mirrors the newest Avro version of its event type (``schemas/avro/``); a test keeps
the two in step. Models are frozen: an event is a fact, handlers never change it.

Public names: ``Event``, ``ClickAction``, ``ClickEvent``, ``EVENT_MODELS``, ``UtcMillis`` (an
aware datetime kept to milliseconds, for ``timestamp-millis`` fields), ``Identifier`` (a
non-empty string).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["EVENT_MODELS", "ClickAction", "ClickEvent", "Event", "Identifier", "UtcMillis"]


def _utc_millis(value: datetime) -> datetime:
    # The wire carries milliseconds (timestamp-millis): dropping finer digits here makes an
    # event equal to its own round trip instead of changing silently on the way.
    if value.tzinfo is UTC and value.microsecond % 1000 == 0:
        return value  # what the decoder produces: the consumer's hot path
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


UtcMillis = Annotated[AwareDatetime, AfterValidator(_utc_millis)]
Identifier = Annotated[str, Field(min_length=1)]


class Event(BaseModel):
    """Base of every event model: frozen, no unknown fields, named and keyed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    """The Avro record name of the event (``schemas/avro/<snake_name>.vN.avsc``)."""
    key_field: ClassVar[str]
    """The field naming the entity whose events must stay in order; the Kafka key."""

    event_id: uuid.UUID


class ClickAction(StrEnum):
    """What a user did with a recommended item (Avro enum ``ClickAction``)."""

    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"


class ClickEvent(Event):
    """One interaction signal of a user with an item (Avro ``oncepipe.events.ClickEvent``)."""

    event_type: ClassVar[str] = "ClickEvent"
    key_field: ClassVar[str] = "user_id"

    event_id: uuid.UUID
    user_id: Identifier
    item_id: Identifier
    action: ClickAction
    occurred_at: UtcMillis
    session_id: Identifier
    context: dict[str, str] | None = None
    surface: str = "unknown"


EVENT_MODELS: dict[str, type[Event]] = {model.event_type: model for model in (ClickEvent,)}
