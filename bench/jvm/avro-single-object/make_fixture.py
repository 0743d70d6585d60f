"""Write the Java tests' fixture: click events encoded by oncepipe's Python codec.

``python bench/jvm/avro-single-object/make_fixture.py`` (from the repository root, in the
project's virtualenv) rewrites ``src/test/resources/oncepipe-values.json``: a list of cases,
each the value's hex (Avro single-object encoding as oncepipe writes it: newest schema, or an
older shipped version) and the fields a reader of the newest version must see.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from schemas import ClickAction, ClickEvent, Codec

OUT = Path(__file__).resolve().parent / "src" / "test" / "resources" / "oncepipe-values.json"


def _expected(event: ClickEvent) -> dict[str, object]:
    return {
        "event_id": str(event.event_id),
        "user_id": event.user_id,
        "item_id": event.item_id,
        "action": event.action.value,
        "occurred_at": int(event.occurred_at.timestamp() * 1000),
        "session_id": event.session_id,
        "context": event.context,
        "surface": event.surface,
    }


def main() -> None:
    """Encode the cases and write them."""
    codec = Codec.load()
    newest = codec.newest_fingerprint("ClickEvent")
    v1 = next(
        fp for fp, (t, _) in codec.writer_schemas().items() if t == "ClickEvent" and fp != newest
    )
    events = [
        ("newest schema, with context", None, ClickEvent(
            event_id=uuid.UUID("0b6c1a3e-7d2f-4c55-9a1e-3f2d8c4b5a61"), user_id="user-0042",
            item_id="sku-00917", action=ClickAction.PURCHASE,
            occurred_at=datetime(2025, 1, 1, 12, 30, 45, 123000, tzinfo=UTC),
            session_id="session-7", context={"device": "ios", "locale": "en-GB", "é": "ü ✓"},
            surface="search")),
        ("newest schema, no context", None, ClickEvent(
            event_id=uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479"), user_id="user-0001",
            item_id="sku-00001", action=ClickAction.VIEW,
            occurred_at=datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            session_id="s", context=None, surface="home")),
        ("version 1 (no surface): read as the newest, surface defaults", v1, ClickEvent(
            event_id=uuid.UUID("5f0c1d2e-3b4a-4958-8a7b-6c5d4e3f2a10"), user_id="user-0999",
            item_id="sku-04999", action=ClickAction.ADD_TO_CART,
            occurred_at=datetime(2026, 11, 30, 0, 0, 0, 1000, tzinfo=UTC),
            session_id="session-9999", context={}, surface="unknown")),
    ]  # fmt: skip
    cases = []
    for name, fingerprint, event in events:
        encoded = (
            codec.encode(event) if fingerprint is None else codec.encode_with(event, fingerprint)
        )
        cases.append({"name": name, "value_hex": encoded.value.hex(), "expected": _expected(event)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
