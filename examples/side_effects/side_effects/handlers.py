"""The two consumer groups of the example.

``requests`` (``--handler side_effects.handlers:requests`` on ``events.click``) emits one
``ReceiptRequested`` per purchase, through the outbox, in the batch's transaction.

``sender`` (``--handler side_effects.handlers:sender`` on ``events.receipt_requested``) POSTs
each to ``SIDE_EFFECTS_DOWNSTREAM_URL`` with ``Idempotency-Key: <event_id>``. A call that fails
raises ``RetriableError``: the batch rolls back and is tried again, calls included, so every
receipt is sent at least once, and the key makes the downstream act once. A 4xx other than 429
is final: ``PoisonError``, a dead letter.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

from consumers import EventHandlers, HandlerContext, InboundEvent
from oncepipe.errors import ConfigError, PoisonError, RetriableError
from schemas import ClickAction, ClickEvent
from side_effects.contract import ReceiptRequested, receipt_id

__all__ = ["DOWNSTREAM_URL", "requests", "sender"]

DOWNSTREAM_URL = "SIDE_EFFECTS_DOWNSTREAM_URL"
TIMEOUT_S = 5.0

requests = EventHandlers()
sender = EventHandlers()


@requests.on(ClickEvent)
def request_receipts(events: Sequence[InboundEvent[ClickEvent]], tx: HandlerContext) -> None:
    """Emit a receipt request per purchase; nothing leaves the database here."""
    for inbound in events:
        click = inbound.event
        if click.action is ClickAction.PURCHASE:
            tx.emit(
                ReceiptRequested(
                    event_id=receipt_id(click.event_id),
                    user_id=click.user_id,
                    item_id=click.item_id,
                    purchased_at=click.occurred_at,
                )
            )


@sender.on(ReceiptRequested)
def send_receipts(events: Sequence[InboundEvent[ReceiptRequested]], tx: HandlerContext) -> None:
    """Call the downstream once per receipt, keyed by its event id."""
    url = os.environ[DOWNSTREAM_URL]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{DOWNSTREAM_URL} must be an http:// or https:// URL")
    for inbound in events:
        receipt = inbound.event
        body = json.dumps({"user_id": receipt.user_id, "item_id": receipt.item_id}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": str(receipt.event_id)},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
                answer.read()
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code != 429:  # refused for good: a dead letter
                raise PoisonError(f"receipt {receipt.event_id} refused: {exc.code}") from exc
            raise RetriableError(f"receipt {receipt.event_id} not sent: {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RetriableError(f"receipt {receipt.event_id} not sent: {exc}") from exc
