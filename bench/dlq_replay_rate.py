"""Replay throughput of ``oncepipe dlq replay``: dead letters per second, ledger included.

Run against running services (``make up``; ``make env`` or ``python -m infra run -- ...``):

    .venv/bin/python bench/dlq_replay_rate.py [--count 5000] [--batch 500] [--json]

It writes COUNT oncepipe dead letters of click events into a fresh ``<topic>.dlq``, then times
the two halves of a replay separately: reading and parsing the dead-letter topic (what
``dlq list`` does) and the replay itself (ledger claim, idempotent acks=all send, ledger
record), in one process. Its topics and ledger rows are removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import UTC, datetime

import psycopg

from consumers.dlq.headers import Failure, dead_letter_headers
from consumers.dlq.reader import DeadLetterReader, Selection
from consumers.dlq.replay import Replayer
from oncepipe.kafka import create_admin, create_producer, create_topics
from oncepipe.migrations import apply_migrations
from oncepipe.settings import Settings, load_settings
from producers.outbox import event_headers
from producers.settings import ProducerSettings
from schemas import ClickAction, ClickEvent, Codec


def write_dead_letters(settings: Settings, topic: str, dlq: str, count: int) -> None:
    codec = Codec.load()
    producer = create_producer(settings, {"linger.ms": 20})
    now = datetime.now(UTC)
    failure = Failure("consumers.handlers.clicks.UnknownItemError", "item unknown", "Traceback")
    for n in range(count):
        encoded = codec.encode(
            ClickEvent(
                event_id=uuid.uuid4(),
                user_id=f"u-{n % 1000}",
                item_id=f"sku-{n}",
                action=ClickAction.CLICK,
                occurred_at=now,
                session_id="s",
            )
        )
        built = dead_letter_headers(
            topic=topic, partition=0, offset=n, timestamp_ms=None, consumer_group="bench",
            stage="handle", failure=failure, attempts=1, first_failure=now,
            original_headers=event_headers(encoded),
        )  # fmt: skip
        headers: list[tuple[str, str | bytes | None]] = [*built]
        while True:
            try:
                producer.produce(dlq, key=encoded.key, value=encoded.value, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(60):
        raise SystemExit("dead letters were not all written within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="dead letters per ledger claim")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    settings = load_settings()
    apply_migrations(settings.database_url.get_secret_value())
    admin = create_admin(settings)
    topic = f"events.bench_replay.{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    create_topics(admin, {topic: 6, dlq: 1})
    try:
        write_dead_letters(settings, topic, dlq, args.count)

        started = time.perf_counter()
        scan = DeadLetterReader(settings).select(Selection(topics=(dlq,)))
        read_s = time.perf_counter() - started
        if len(scan.letters) != args.count:
            raise SystemExit(f"read {len(scan.letters)} dead letters, wrote {args.count}")

        replayer = Replayer(settings, ProducerSettings(), batch_size=args.batch)
        started = time.perf_counter()
        outcomes = replayer.replay(scan.letters)
        replay_s = time.perf_counter() - started
        sent = sum(o.outcome == "sent" for o in outcomes)
        if sent != args.count:
            raise SystemExit(f"only {sent} of {args.count} dead letters were sent")
    finally:
        for future in admin.delete_topics([topic, dlq], operation_timeout=30).values():
            future.result(timeout=60)
        with psycopg.connect(settings.database_url.get_secret_value()) as conn:
            conn.execute("DELETE FROM oncepipe.dlq_replays WHERE dlq_topic = %s", (dlq,))

    result = {
        "dead_letters": args.count,
        "batch": args.batch,
        "read_seconds": round(read_s, 3),
        "read_per_second": round(args.count / read_s),
        "replay_seconds": round(replay_s, 3),
        "replay_per_second": round(args.count / replay_s),
        "end_to_end_per_second": round(args.count / (read_s + replay_s)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("| dead letters | batch | read+parse /s | replay (ledger + acks) /s | both /s |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {args.count} | {args.batch} | {result['read_per_second']:,} | "
        f"{result['replay_per_second']:,} | {result['end_to_end_per_second']:,} |"
    )


if __name__ == "__main__":
    main()
