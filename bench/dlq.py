"""DLQ replay: dead letters per second through ``oncepipe dlq replay``'s code, beside a raw
producer sending the same records.

Setup (not timed): a fresh source topic (6 partitions) and its ``.dlq`` topic (1 partition),
filled with COUNT oncepipe dead letters of click events (the headers ``handle_failure``
writes, the original event's key, value and headers), then read and parsed once.

Variants, interleaved, each sending every dead letter back to its source topic:

- ``raw idempotent produce, no ledger (ceiling)``: confluent-kafka with oncepipe's producer
  settings (idempotent, ``acks=all``) producing the replay records (key, value, original
  headers plus ``replay_of``/``replay_count``, built before the clock) in a loop, one
  ``flush``; no database. Its producer is created and warmed up (topic metadata, producer
  id) before the clock: a fresh librdkafka producer holds its first records about 0.5 s
  here until it has the topic's metadata, which would make the ceiling a start-up figure.
- ``replay (ledger + idempotent send)``: ``Replayer.replay`` of the parsed dead letters,
  batch 500: destination check, then per chunk the ledger claim (one committed transaction,
  which also records the chunk before's ``sent`` rows), the chunk sent while the next one is
  claimed, its acknowledgements awaited before the next send.
  The ledger rows of the previous run are deleted before the clock starts. Everything one
  replay does is timed, its start included (destination check, producer, connection).
- ``replay, producer started (ledger + idempotent send)``: the same replay given a
  ``ChunkSender`` created and warmed up before the clock as the ceiling's is (metadata,
  producer id: one record sent); what each further replay of a long-lived producer costs,
  like for like with the ceiling. A fresh idempotent producer's id takes 0.1-0.5 s here,
  which at 5,000 dead letters (quick) is as long as the replay itself.
- ``dlq list + replay (read, parse, ledger, send)``: reading and parsing the dead-letter
  topic (``DeadLetterReader.select``, what ``dlq list`` does) and then the replay: what one
  ``oncepipe dlq replay --topic ...`` does end to end.

``python -m bench.dlq [--quick] [--runs N]`` runs this suite alone (as ``python -m bench
--only dlq``).

Public names: ``run_dlq``, ``write_dead_letters``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.env import BenchEnv
from bench.measure import Sample, Stopwatch
from bench.raw import Producer, raw_config
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from consumers.deadletter_headers import Failure, dead_letter_headers
from consumers.dlq.headers import DeadLetter, replay_headers
from consumers.dlq.reader import DeadLetterReader, Selection
from consumers.dlq.replay import Replayer
from consumers.dlq.sender import ChunkSender
from oncepipe.kafka import create_admin, create_producer, create_topics
from oncepipe.settings import Settings
from producers.outbox import event_headers
from producers.settings import ProducerSettings
from schemas import ClickAction, ClickEvent, Codec

__all__ = ["run_dlq", "write_dead_letters"]

BATCH = 500  # dead letters per ledger claim: the replay's default
BASELINE = "raw idempotent produce, no ledger (ceiling)"
REPLAY = "replay (ledger + idempotent send)"
WARM = "replay, producer started (ledger + idempotent send)"
END_TO_END = "dlq list + replay (read, parse, ledger, send)"


def write_dead_letters(settings: Settings, topic: str, dlq: str, count: int) -> None:
    """Write ``count`` dead letters of click events from ``topic`` into ``dlq``."""
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
            topic=topic, partition=n % 6, offset=n, timestamp_ms=None, consumer_group="bench",
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
        raise RuntimeError("dead letters were not all written within 60 s")


def _read(env: BenchEnv, dlq: str, count: int) -> list[DeadLetter]:
    letters = DeadLetterReader(env.settings).select(Selection(topics=(dlq,))).letters
    if len(letters) != count:
        raise RuntimeError(f"read {len(letters)} dead letters, wrote {count}")
    return list(letters)


def _clear_ledger(env: BenchEnv, dlq: str) -> None:
    with env.connect(autocommit=True) as conn:
        conn.execute("DELETE FROM oncepipe.dlq_replays WHERE dlq_topic = %s", (dlq,))


def _replay(
    env: BenchEnv, letters: Sequence[DeadLetter], sender: ChunkSender | None = None
) -> None:
    replayer = Replayer(env.settings, ProducerSettings(), batch_size=BATCH)
    outcomes = replayer.replay(letters, sender=sender)
    sent = sum(o.outcome == "sent" for o in outcomes)
    if sent != len(letters):
        raise RuntimeError(f"only {sent} of {len(letters)} dead letters were replayed")


def _variants(env: BenchEnv, dlq: str, letters: list[DeadLetter]) -> list[Variant]:
    cpu = ServiceCpu()
    count = len(letters)
    payload = sum(len(letter.value or b"") for letter in letters)
    headers: list[list[tuple[str, str | bytes | None]]] = [
        [*replay_headers(letter, 1)] for letter in letters
    ]
    records = [
        (letter.source_topic or "", letter.key, letter.value, built)
        for letter, built in zip(letters, headers, strict=True)
    ]
    if not all(topic for topic, *_ in records):
        raise RuntimeError("a dead letter names no source topic")

    def raw() -> Sample:
        failed = 0

        def report(error: Any, _message: Any) -> None:
            nonlocal failed
            if error is not None:
                failed += 1

        producer = Producer(raw_config(env, idempotent=True))
        topic, key, value, built = records[0]
        producer.produce(topic, value, key, headers=built)  # warm-up: metadata, producer id
        producer.flush(30)
        with Stopwatch(cpu) as sw:
            produce, poll = producer.produce, producer.poll
            for n, (topic, key, value, built) in enumerate(records):
                while True:
                    try:
                        produce(topic, value, key, headers=built, on_delivery=report)
                        break
                    except BufferError:
                        poll(0.05)
                if n % 1000 == 0:
                    poll(0)
            unanswered = producer.flush(120)
        if unanswered or failed:
            raise RuntimeError(f"raw producer: {unanswered} unanswered, {failed} failed")
        return sw.sample(count, payload)

    def replay(read: bool) -> Callable[[], Sample]:
        def run() -> Sample:
            _clear_ledger(env, dlq)
            with Stopwatch(cpu) as sw:
                _replay(env, _read(env, dlq, count) if read else letters)
            return sw.sample(count, payload)

        return run

    def warm() -> Sample:
        _clear_ledger(env, dlq)
        sender = ChunkSender(env.settings, ProducerSettings())
        try:
            topic, key, value, built = records[0]  # warm-up: metadata, producer id
            first = sender.send([(topic, key, value, list(built))])  # type: ignore[arg-type]
            sender.wait(first, 30)
            if first.errors:
                raise RuntimeError("the warm-up record was not written")
            with Stopwatch(cpu) as sw:
                _replay(env, letters, sender)
        finally:
            sender.close()
        return sw.sample(count, payload)

    return [
        Variant(BASELINE, "confluent-kafka, idempotent, acks=all, same records, no DB", raw),
        Variant(REPLAY, f"Replayer.replay, batch {BATCH}, ledger included", replay(False)),
        Variant(WARM, "Replayer.replay(sender=...), producer warmed up like the ceiling's", warm),
        Variant(END_TO_END, "DeadLetterReader.select, then Replayer.replay", replay(True)),
    ]


def run_dlq(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Run the DLQ replay benchmark."""
    result = SuiteResult("dlq", quick=quick)
    count = 5_000 if quick else 20_000
    topic = env.create_topic("dlq")
    dlq = f"{topic}.dlq"
    create_topics(create_admin(env.settings), {dlq: 1})
    try:
        write_dead_letters(env.settings, topic, dlq, count)
        letters = _read(env, dlq, count)
        variants = _variants(env, dlq, letters)
        samples = interleave(runs, variants)
    finally:
        env.delete_topic(dlq)
        env.delete_topic(topic)
        _clear_ledger(env, dlq)
    result.add_case(
        "click dead letters",
        variants,
        samples,
        baseline=BASELINE,
        params={
            "dead_letters": count,
            "batch": BATCH,
            "event_bytes": len(letters[0].value or b""),
            "source_partitions": 6,
        },
    )
    return result


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["--only", "dlq", *sys.argv[1:]]))
