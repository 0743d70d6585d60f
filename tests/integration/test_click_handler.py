"""The click handler's rows: every field stored as the event carried it.

Its arrays travel in binary format; these pin that no character a text array would have to
escape (quotes, backslashes, braces, commas, the word NULL) and no missing context changes
what is stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from consumers.batch import apply_batch
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from oncepipe.settings import Settings
from schemas import ClickAction, ClickEvent

pytestmark = pytest.mark.integration

AWKWARD = ['a"b', "c\\d", "{e,f}", "NULL", " g ", "h\ni", "\u00e9\u4e2d\U0001f600", "''"]


def _click(n: int, text: str, context: dict[str, str] | None) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.UUID(int=n + 1),
        user_id=f"u{text}",
        item_id=f"i{text}",
        action=ClickAction.CLICK,
        occurred_at=datetime(2025, 1, 1, 0, 0, n, tzinfo=UTC),
        session_id=text,
        surface=text,
        context=context,
    )


def _apply(settings: Settings, clicks: list[ClickEvent]) -> list[tuple[object, ...]]:
    events = [
        InboundEvent(event=c, event_id=c.event_id, topic="t", partition=3, offset=n)
        for n, c in enumerate(clicks)
    ]
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        apply_batch(
            conn, settings=settings, group="g", events=events, positions={("t", 3): None},
            handler=handle_clicks,
        )  # fmt: skip
        return conn.execute(
            "SELECT event_id, user_id, item_id, action, occurred_at, session_id, surface,"
            ' context, topic, partition, "offset" FROM public.click_events'
            " WHERE consumer_group = 'g' ORDER BY \"offset\""
        ).fetchall()


def test_text_fields_and_contexts_are_stored_verbatim(settings: Settings) -> None:
    clicks = [_click(n, text, {text: text, "k": text}) for n, text in enumerate(AWKWARD)]
    rows = _apply(settings, clicks)
    expected = [
        (
            c.event_id,
            c.user_id,
            c.item_id,
            "click",
            c.occurred_at,
            c.session_id,
            c.surface,
            c.context,
            "t",
            3,
            n,
        )
        for n, c in enumerate(clicks)
    ]
    assert rows == expected


def test_a_batch_without_any_context_stores_null_contexts(settings: Settings) -> None:
    rows = _apply(settings, [_click(n, f"x{n}", None) for n in range(3)])
    assert [row[7] for row in rows] == [None, None, None]


def test_counters_are_keyed_by_the_exact_identifiers(settings: Settings) -> None:
    clicks = [_click(n, text, None) for n, text in enumerate(AWKWARD)]
    _apply(settings, [*clicks, _click(len(AWKWARD), AWKWARD[0], None)])
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        items: dict[str, int] = dict(
            conn.execute(
                "SELECT item_id, count FROM public.item_click_counts WHERE consumer_group = 'g'"
            ).fetchall()
        )
    assert items == {f"i{text}": 2 if text == AWKWARD[0] else 1 for text in AWKWARD}
