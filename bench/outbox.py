"""Outbox: the cost of ``enqueue`` inside an upstream transaction, and relay throughput.

Enqueue (µs per event, one connection, ``synchronous_commit=on`` as the services run it):

- ``plain INSERT (baseline)``: ``INSERT INTO bench.plain_events (key, value)`` of the same
  pre-encoded bytes into a table with only a bigserial key;
- ``enqueue_record (pre-encoded)``: ``producers.outbox.enqueue_record`` of the same bytes and
  headers: the SQL function, the unique (topic, dedupe_id) check, bytea[] headers, NOTIFY;
- ``enqueue (encode + headers)``: ``producers.outbox.enqueue`` from the event model;
- ``enqueue_many (encode + headers, one statement)``, at 100 per transaction only:
  ``producers.outbox.enqueue_many`` of the transaction's models (one multi-row INSERT).

Each is run with one event per transaction (an upstream request) and with 100.

Relay (rows per second from "pending in the outbox" to "acknowledged by Kafka and marked"):

- ``raw idempotent produce, no database (ceiling)``: the same rows' bytes and headers sent by
  confluent-kafka with oncepipe's settings, nothing read or written in PostgreSQL;
- ``relay run_once loop``: ``Relay.run_once`` (batch 1,000) until the outbox is empty.

The backlog is loaded with one ``INSERT ... SELECT FROM generate_series`` (1,000 distinct
encoded values cycled) and vacuumed before it is timed; a large backlog also records the
drain rate of its first and last tenth, to show whether the outbox slows as it drains.

Public names: ``run_outbox``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.env import BenchEnv
from bench.events import EVENT_KINDS, EventSet
from bench.measure import Sample, Stopwatch
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from producers.outbox import enqueue, enqueue_many, enqueue_record
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from schemas import Codec

__all__ = ["run_outbox"]

PLAIN_TABLE = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.plain_events (
    id bigserial PRIMARY KEY, key bytea, value bytea NOT NULL
)
"""
LOAD_BACKLOG = """
INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value, header_names, header_values)
SELECT %(topic)s, 'bench-' || g, convert_to('user-' || lpad((g %% 1000)::text, 4, '0'), 'UTF8'),
       (%(values)s::bytea[])[1 + g %% %(distinct)s], %(names)s::bytea[], %(header_values)s::bytea[]
FROM generate_series(1, %(rows)s) AS g
"""
ENQUEUE_BASELINE = "plain INSERT (baseline)"
RELAY_BASELINE = "raw idempotent produce, no database (ceiling)"


def _reset(env: BenchEnv) -> None:
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.outbox RESTART IDENTITY")
        conn.execute("TRUNCATE bench.plain_events RESTART IDENTITY")


def _enqueue_variants(
    env: BenchEnv, topic: str, data: EventSet, codec: Codec, per_txn: int
) -> list[Variant]:
    cpu = ServiceCpu()
    rows = list(zip(data.events, data.encoded, data.headers, strict=True))

    def timed(write: Callable[[Any, int], None]) -> Callable[[], Sample]:
        def each(conn: Any, start: int, end: int) -> None:
            for n in range(start, end):
                write(conn, n)

        return timed_chunks(each)

    def timed_chunks(write: Callable[[Any, int, int], None]) -> Callable[[], Sample]:
        def run() -> Sample:
            _reset(env)
            with env.connect() as conn, Stopwatch(cpu) as sw:
                for start in range(0, len(rows), per_txn):
                    write(conn, start, min(start + per_txn, len(rows)))
                    conn.commit()
            return sw.sample(len(rows), data.payload_bytes)

        return run

    def plain(conn: Any, n: int) -> None:
        encoded = rows[n][1]
        conn.execute(
            "INSERT INTO bench.plain_events (key, value) VALUES (%s, %s)",
            (encoded.key, encoded.value),
        )

    def record(conn: Any, n: int) -> None:
        _, encoded, headers = rows[n]
        enqueue_record(
            conn, topic, str(encoded.event_id), key=encoded.key, value=encoded.value,
            headers=headers,
        )  # fmt: skip

    def full(conn: Any, n: int) -> None:
        enqueue(conn, rows[n][0], codec=codec, topic=topic)

    def many(conn: Any, start: int, end: int) -> None:
        enqueue_many(conn, data.events[start:end], codec=codec, topic=topic)

    variants = [
        Variant(ENQUEUE_BASELINE, "INSERT (key, value) into a bigserial table", timed(plain)),
        Variant("enqueue_record (pre-encoded)", "producers.outbox.enqueue_record", timed(record)),
        Variant(
            "enqueue (encode + headers)", "producers.outbox.enqueue from the model", timed(full)
        ),
    ]
    if per_txn > 1:
        variants.append(
            Variant(
                "enqueue_many (encode + headers, one statement)",
                f"producers.outbox.enqueue_many of the transaction's {per_txn} models",
                timed_chunks(many),
            )
        )
    return variants


def _load_backlog(env: BenchEnv, topic: str, data: EventSet, rows: int) -> None:
    distinct = min(1000, len(data.encoded))
    with env.connect(autocommit=True) as conn:
        conn.execute(
            LOAD_BACKLOG,
            {
                "topic": topic,
                "values": [e.value for e in data.encoded[:distinct]],
                "distinct": distinct,
                "names": [name.encode() for name, _ in data.headers[0]],
                "header_values": [value.encode() for _, value in data.headers[0]],
                "rows": rows,
            },
        )
        conn.execute("VACUUM (ANALYZE) oncepipe.outbox")


def _drain(relay: Relay, rows: int) -> dict[str, float]:
    """Call ``run_once`` until nothing is pending; the rates of the first and last tenth."""
    marks: list[tuple[int, float]] = [(0, time.perf_counter())]
    done = 0
    while True:
        published = relay.run_once()
        if not published:
            break
        done += published
        marks.append((done, time.perf_counter()))
    if done != rows:
        raise RuntimeError(f"relay published {done} rows, expected {rows}")
    tenth = rows // 10

    def rate(lo: int, hi: int) -> float:
        start = next(t for n, t in reversed(marks) if n <= lo)
        end = next(t for n, t in marks if n >= hi)
        return (hi - lo) / (end - start)

    return {
        "first_tenth_rows_per_s": rate(0, tenth),
        "last_tenth_rows_per_s": rate(rows - tenth, rows),
    }


def _relay_variants(env: BenchEnv, topic: str, data: EventSet, rows: int) -> list[Variant]:
    cpu = ServiceCpu()
    repeat = -(-rows // len(data.encoded))
    backlog = EventSet(
        data.kind, [], (data.encoded * repeat)[:rows], (data.headers * repeat)[:rows]
    )
    payload = backlog.payload_bytes

    def raw() -> Sample:
        producer = Producer(raw_config(env, idempotent=True))
        producer.produce(topic, data.encoded[0].value)
        producer.flush(30)
        with Stopwatch(cpu) as sw:
            raw_send(producer, topic, backlog)
        return sw.sample(rows, payload)

    def relay_loop() -> Sample:
        _reset(env)
        relay = Relay(env.settings, RelaySettings(batch_size=1000), ProducerSettings())
        try:
            enqueue_record_warmup(env, topic, data)
            relay.run_once()  # connects and acquires the producer id before the clock starts
            _load_backlog(env, topic, data, rows)
            with Stopwatch(cpu) as sw:
                tenths = _drain(relay, rows)
        finally:
            relay.request_stop()
            relay.run()  # returns at once: closes its connections and flushes the producer
        return sw.sample(rows, payload, tenths)

    return [
        Variant(RELAY_BASELINE, "confluent-kafka, same bytes and headers, no PostgreSQL", raw),
        Variant("relay run_once loop", "producers.relay.Relay.run_once, batch 1,000", relay_loop),
    ]


def enqueue_record_warmup(env: BenchEnv, topic: str, data: EventSet) -> None:
    """One row for the relay's warm-up pass."""
    with env.connect() as conn:
        enqueue_record(conn, topic, "warm-up", key=None, value=data.encoded[0].value, headers=[])
        conn.commit()


def run_outbox(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Run the enqueue and relay benchmarks for both event sizes."""
    result = SuiteResult("outbox", quick=quick)
    codec = Codec.load()
    with env.connect(autocommit=True) as conn:
        conn.execute(PLAIN_TABLE)
    single, hundred = (1000, 10_000) if quick else (3000, 30_000)
    relay_rows = 20_000 if quick else 100_000
    backlog_rows = 100_000 if quick else 1_000_000
    for kind in EVENT_KINDS:
        data = EventSet.build(kind, hundred, codec)
        with env.topic("outbox") as topic:
            for per_txn, count in ((1, single), (100, hundred)):
                part = EventSet(
                    kind, data.events[:count], data.encoded[:count], data.headers[:count]
                )
                variants = _enqueue_variants(env, topic, part, codec, per_txn)
                result.add_case(
                    f"enqueue {kind}, {per_txn}/txn",
                    variants,
                    interleave(runs, variants),
                    baseline=ENQUEUE_BASELINE,
                    params={"events": count, "per_txn": per_txn, "event_bytes": data.median_bytes},
                )
            cases = [(f"relay {kind}", relay_rows)]
            if kind == "click":
                cases.append((f"relay backlog {kind}", backlog_rows))
            for case, rows in cases:
                variants = _relay_variants(env, topic, data, rows)
                result.add_case(
                    case,
                    variants,
                    interleave(runs, variants),
                    baseline=RELAY_BASELINE,
                    params={"rows": rows, "relay_batch": 1000, "event_bytes": data.median_bytes},
                )
    _reset(env)
    return result
