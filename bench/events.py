"""The benchmark data: click events of two sizes, built once and shared by every variant.

- ``click``: a click event with a small ``context`` (device, locale, experiment arm), about
  150 bytes encoded;
- ``click-2k``: the same event with a ``context`` map of 47 random 32-character values, about
  2 KB encoded (random so lz4 cannot shrink it to nothing).

Public names: ``EVENT_KINDS``, ``make_events``, ``EventSet``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec, Encoded

__all__ = ["EVENT_KINDS", "EventSet", "make_events"]

EVENT_KINDS = ("click", "click-2k")
_SURFACES = ("home", "search", "similar_items", "email")


def _context(kind: str, rng: random.Random, n: int) -> dict[str, str]:
    if kind == "click":
        return {"device": ("ios", "android", "web")[n % 3], "locale": "en-GB", "arm": f"b{n % 4}"}
    return {f"attr_{i:02d}": rng.randbytes(16).hex() for i in range(47)}


def make_events(kind: str, count: int, seed: int = 7) -> list[ClickEvent]:
    """``count`` click events of ``kind`` over 1,000 users and 5,000 items."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    actions = list(ClickAction)
    return [
        ClickEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=f"user-{rng.randrange(1000):04d}",
            item_id=f"sku-{rng.randrange(5000):05d}",
            action=actions[n % len(actions)],
            occurred_at=start + timedelta(milliseconds=n),
            session_id=f"session-{n % 10_000}",
            context=_context(kind, rng, n),
            surface=_SURFACES[n % len(_SURFACES)],
        )
        for n in range(count)
    ]


@dataclass(frozen=True)
class EventSet:
    """Events of one kind with their encodings and headers, made once per benchmark."""

    kind: str
    events: list[ClickEvent]
    encoded: list[Encoded]
    headers: list[list[tuple[str, str]]]

    @classmethod
    def build(cls, kind: str, count: int, codec: Codec) -> EventSet:
        """Make ``count`` events of ``kind`` and encode them."""
        events = make_events(kind, count)
        encoded = codec.encode_batch(events)
        return cls(kind, events, encoded, [event_headers(e) for e in encoded])

    @property
    def median_bytes(self) -> int:
        """The median encoded size of a value."""
        sizes = sorted(len(e.value) for e in self.encoded)
        return sizes[len(sizes) // 2]

    @property
    def payload_bytes(self) -> int:
        """The encoded values' total size."""
        return sum(len(e.value) for e in self.encoded)
