"""The naive consumer of the story: how the recommendation pipeline used to read clicks.

Auto-commit every few seconds, no inbox, one UPDATE per delivery: every duplicate record an
upstream re-sent is counted again, and every record redelivered after a crash (delivered but
not yet auto-committed) is counted twice. What it cannot read it drops, silently (it keeps a
count only so the demo can show it). Its counters are what the model trained on.

Each delivery is one transaction of its own bookkeeping (deliveries, drops, counters), so the
demo can check that every delivery it read was counted: the inflation comes from the offsets,
not from its own writes.

Public names: ``NaiveTally``, ``create_naive_tables``, ``naive_tally``, ``run_naive_consumer``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from oncepipe.db import connect
from oncepipe.kafka import KafkaConsumer
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from oncepipe.signals import install_stop_handlers
from schemas import ClickEvent, Codec, SchemaError

__all__ = ["NaiveTally", "create_naive_tables", "naive_tally", "run_naive_consumer"]

log = get_logger("naive-consumer")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS public.demo_naive_item_counts (
    run text NOT NULL, item_id text NOT NULL, count bigint NOT NULL,
    PRIMARY KEY (run, item_id)
);
CREATE TABLE IF NOT EXISTS public.demo_naive_deliveries (
    run text PRIMARY KEY, delivered bigint NOT NULL
);
ALTER TABLE public.demo_naive_deliveries ADD COLUMN IF NOT EXISTS dropped bigint NOT NULL DEFAULT 0;
"""


@dataclass(frozen=True)
class NaiveTally:
    """The naive consumer's counters, and what it read to get them."""

    counts: dict[str, int]
    delivered: int
    """Records it read, redeliveries included."""
    dropped: int
    """Records among them it could not read (poison), dropped without a trace."""


def run_naive_consumer(settings: Settings, *, run: str, group: str, topic: str) -> None:
    """Consume ``topic`` with auto-commit and apply every delivery, until SIGTERM."""
    stop = threading.Event()
    install_stop_handlers(stop.set)
    # The flaw: offsets move on a timer, not with the writes.
    consumer = KafkaConsumer.auto_committing(
        settings,
        group,
        {
            "auto.commit.interval.ms": 5000,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        },
    )
    codec = Codec.load()
    with connect(settings, "oncepipe-demo-naive", autocommit=True) as conn:
        consumer.subscribe([topic])
        try:
            while not stop.is_set():
                for message in consumer.consume(200, timeout=0.5):
                    if message.error() is None:
                        _apply(conn, codec, run, message.value())
        finally:
            consumer.close()


def _apply(conn: Any, codec: Codec, run: str, value: bytes | None) -> None:
    try:
        event: Any = codec.to_model(codec.decode(value))
    except SchemaError:
        event = None  # the old pipeline dropped what it could not read, silently
    readable = isinstance(event, ClickEvent)
    with conn.transaction():
        conn.execute(
            "INSERT INTO public.demo_naive_deliveries AS d VALUES (%s, 1, %s)"
            " ON CONFLICT (run) DO UPDATE"
            " SET delivered = d.delivered + 1, dropped = d.dropped + excluded.dropped",
            (run, 0 if readable else 1),
        )
        if readable:
            conn.execute(
                "INSERT INTO public.demo_naive_item_counts VALUES (%s, %s, 1)"
                " ON CONFLICT (run, item_id)"
                " DO UPDATE SET count = demo_naive_item_counts.count + 1",
                (run, event.item_id),
            )


def create_naive_tables(conn: Any) -> None:
    """Create the naive consumer's own tables (demo only, not a migration)."""
    conn.execute(_SCHEMA)


def naive_tally(conn: Any, run: str) -> NaiveTally:
    """The naive consumer's per-item counts and how many deliveries it read and dropped."""
    rows = conn.execute(
        "SELECT item_id, count FROM public.demo_naive_item_counts WHERE run = %s", (run,)
    ).fetchall()
    read = conn.execute(
        "SELECT delivered, dropped FROM public.demo_naive_deliveries WHERE run = %s", (run,)
    ).fetchone()
    delivered, dropped = (int(read[0]), int(read[1])) if read else (0, 0)
    return NaiveTally({item: int(count) for item, count in rows}, delivered, dropped)
