"""Throughput of the consumer's click-handler path at a given batch size (default 500).

Two numbers, both with 20% duplicate records (upstream retries) as in the tests:

- ``apply_batch``: the PostgreSQL side alone (inbox, click handler, offsets compare-and-set,
  commit) fed with already decoded events, one transaction per batch;
- ``runtime``: the whole worker (``ConsumerRuntime``: consume from Kafka, decode, the same
  transaction per batch), timed from its first committed batch until every record is applied.

Run against the services of ``make up`` (``eval "$(make env)"``):

    .venv/bin/python -m bench.consumer_clicks [--events 50000] [--batch-size 500]

Prints one JSON document; nothing is asserted (numbers vary with the machine).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import make_conninfo

from consumers.batch import apply_batch
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.db import connect
from oncepipe.kafka import create_admin, create_producer, create_topics
from oncepipe.logging import configure_logging
from oncepipe.migrations import apply_migrations
from oncepipe.settings import Settings, load_settings
from schemas import ClickAction, ClickEvent, Codec


def clicks(count: int, duplicates: float, seed: int = 1) -> list[ClickEvent]:
    """``count`` distinct events plus ``duplicates`` of them again, shuffled a little."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        ClickEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=f"u{rng.randrange(5000)}",
            item_id=f"i{rng.randrange(2000)}",
            action=rng.choice(list(ClickAction)),
            occurred_at=start + timedelta(milliseconds=n),
            session_id=f"s{n // 10}",
            surface="home",
        )
        for n in range(count)
    ]
    keyed = [(float(n), e) for n, e in enumerate(events)]
    keyed += [
        (n + rng.uniform(1, 300), events[n])
        for n in rng.sample(range(count), int(count * duplicates))
    ]
    return [e for _, e in sorted(keyed, key=lambda pair: pair[0])]


def bench_apply(settings: Settings, records: list[ClickEvent], batch_size: int) -> float:
    """Events per second through apply_batch alone, one partition."""
    group = f"bench-apply-{uuid.uuid4().hex[:8]}"
    inbound = [
        InboundEvent(event=e, event_id=e.event_id, topic="bench", partition=0, offset=n)
        for n, e in enumerate(records)
    ]
    position: int | None = None
    with connect(settings, "bench") as conn:
        began = time.perf_counter()
        for start in range(0, len(inbound), batch_size):
            batch = inbound[start : start + batch_size]
            result = apply_batch(
                conn, settings=settings, group=group, events=batch,
                positions={("bench", 0): position}, handler=handle_clicks,
            )  # fmt: skip
            position = result.moves[-1].next_offset
        elapsed = time.perf_counter() - began
    return len(inbound) / elapsed


def produce(settings: Settings, topic: str, records: list[ClickEvent]) -> None:
    """Every record into ``topic`` (encoded once, as a producer would)."""
    codec = Codec.load()
    producer = create_producer(settings, {"linger.ms": 20})
    for event in records:
        encoded = codec.encode(event)
        while True:
            try:
                producer.produce(topic, value=encoded.value, key=encoded.key)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def stored_total(conn: psycopg.Connection[Any], group: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM oncepipe.consumer_offsets"
        " WHERE consumer_group = %s",
        (group,),
    ).fetchone()
    return int(row[0]) if row else 0


def bench_runtime(settings: Settings, records: list[ClickEvent], batch_size: int) -> float:
    """Events per second through the whole worker, first commit to last."""
    topic = f"bench.clicks.{uuid.uuid4().hex[:8]}"
    create_topics(create_admin(settings), {topic: 6})
    produce(settings, topic, records)
    group = f"bench-runtime-{uuid.uuid4().hex[:8]}"
    config = ConsumerSettings(group=group, topics=(topic,), handler="clicks", batch_size=batch_size)
    runtime = ConsumerRuntime(settings, config, decoder=Codec.load(), handler=handle_clicks)
    worker = threading.Thread(target=runtime.run, daemon=True)
    worker.start()
    began = None
    with connect(settings, "bench", autocommit=True) as conn:
        while (done := stored_total(conn, group)) < len(records):
            if began is None and done > 0:
                began, first = time.perf_counter(), done
            time.sleep(0.01)
        elapsed = time.perf_counter() - (began or time.perf_counter())
    runtime.stop()
    worker.join(30)
    create_admin(settings).delete_topics([topic])
    return (len(records) - first) / elapsed if began else float("nan")


def scratch_database(url: str) -> tuple[str, str]:
    """A new, migrated database on the same server (the shared one stays untouched)."""
    name = f"bench_consumer_{uuid.uuid4().hex[:8]}"
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    apply_migrations(scratch)
    return scratch, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="distinct events")
    parser.add_argument("--duplicates", type=float, default=0.2, help="extra duplicate records")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    base = load_settings()
    url, name = scratch_database(base.database_url.get_secret_value())
    settings = load_settings(database_url=url, log_level="WARNING", log_format="console")
    configure_logging(settings)
    records = clicks(args.events, args.duplicates)
    try:
        result = {
            "batch_size": args.batch_size,
            "records": len(records),
            "distinct_events": args.events,
            "apply_batch_events_per_s": round(bench_apply(settings, records, args.batch_size)),
            "runtime_events_per_s": round(bench_runtime(settings, records, args.batch_size)),
        }
    finally:
        admin = make_conninfo(base.database_url.get_secret_value(), dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
