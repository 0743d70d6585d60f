"""Produce: oncepipe's producer path next to raw confluent-kafka on the same bytes.

Variants, per event size, on one fresh 6-partition topic:

- ``raw, idempotence off, acks=1``: the cheapest safe-looking producer, pre-encoded bytes;
- ``raw idempotent (baseline)``: confluent-kafka with exactly oncepipe's settings
  (``ProducerSettings.client_config()`` + ``enable.idempotence=true`` + ``acks=all``),
  pre-encoded bytes and headers, ``produce`` in a loop, ``poll(0)`` every 1,000, one ``flush``;
- ``oncepipe send_all (pre-encoded)``: ``EventProducer.send_all`` in chunks of 1,000 (the
  relay's batch), which waits for every delivery report of a chunk before the next one;
- ``oncepipe encode + headers + send_all``: the whole producer path from event models;
- ``oncepipe send (pipelined, pre-encoded)``: ``EventProducer.send`` of every record, then one
  ``flush``: no wait per chunk, one ``Delivery`` per record to a callback;
- ``oncepipe encode + headers + send (pipelined)``: the same from event models, encoded in
  chunks of 1,000.

Every client is created and warmed up (connected, producer id acquired) before it is timed.
The input (events, encodings, headers, records: hundreds of thousands of objects built before
the clock) is frozen out of the garbage collector (``gc.freeze``) while the variants run: else
each full collection set off by the path's own allocations walks the whole input, a cost of the
harness's heap (7 µs per event of the 24 measured with 20,000 click events held), not of the
path, and the raw baseline allocates nothing to set one off.

Public names: ``run_produce``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from bench.env import BenchEnv
from bench.events import EVENT_KINDS, EventSet
from bench.measure import Sample, Stopwatch
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from producers.outbox import event_headers
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.settings import ProducerSettings
from schemas import Codec

__all__ = ["run_produce"]

CHUNK = 1000  # the relay's default batch_size
BASELINE = "raw idempotent (baseline)"


def _send_chunks(producer: EventProducer, records: Sequence[OutgoingRecord]) -> None:
    for start in range(0, len(records), CHUNK):
        deliveries = producer.send_all(records[start : start + CHUNK])
        if not all(d.ok for d in deliveries):
            raise RuntimeError("oncepipe producer: some deliveries failed")


class _Failures:
    """A delivery callback that counts refused records."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, delivery: Delivery) -> None:
        if delivery.error is not None:
            self.count += 1


def _variants(env: BenchEnv, topic: str, data: EventSet, codec: Codec) -> list[Variant]:
    cpu = env.service_cpu()
    warm = data.encoded[0]

    def raw(idempotent: bool) -> Callable[[], Sample]:
        def run() -> Sample:
            producer = Producer(raw_config(env, idempotent=idempotent))
            producer.produce(topic, warm.value, warm.key)
            producer.flush(30)
            with Stopwatch(cpu) as sw:
                raw_send(producer, topic, data)
            return sw.sample(len(data.events), data.payload_bytes)

        return run

    prebuilt = [
        OutgoingRecord(n, topic, e.key, e.value, h)
        for n, (e, h) in enumerate(zip(data.encoded, data.headers, strict=True))
    ]

    def encoded_chunks() -> Iterator[list[OutgoingRecord]]:
        for start in range(0, len(data.events), CHUNK):
            chunk = codec.encode_batch(data.events[start : start + CHUNK])
            yield [
                OutgoingRecord(start + n, topic, e.key, e.value, event_headers(e))
                for n, e in enumerate(chunk)
            ]

    def oncepipe(encode: bool) -> Callable[[], Sample]:
        def run() -> Sample:
            producer = EventProducer(env.settings, ProducerSettings())
            _send_chunks(producer, prebuilt[:1])
            with Stopwatch(cpu) as sw:
                if encode:
                    for records in encoded_chunks():
                        _send_chunks(producer, records)
                else:
                    _send_chunks(producer, prebuilt)
            producer.close()
            return sw.sample(len(data.events), data.payload_bytes)

        return run

    def pipelined(encode: bool) -> Callable[[], Sample]:
        def run() -> Sample:
            producer = EventProducer(env.settings, ProducerSettings())
            _send_chunks(producer, prebuilt[:1])
            failures = _Failures()
            with Stopwatch(cpu) as sw:
                if encode:
                    for records in encoded_chunks():
                        producer.send(records, failures)
                else:
                    producer.send(prebuilt, failures)
                unanswered = producer.flush(120)
            producer.close()
            if unanswered or failures.count:
                raise RuntimeError(
                    f"oncepipe send: {unanswered} unanswered, {failures.count} failed"
                )
            return sw.sample(len(data.events), data.payload_bytes)

        return run

    return [
        Variant(
            "raw, idempotence off, acks=1",
            "confluent-kafka, pre-encoded bytes, enable.idempotence=false, acks=1",
            raw(False),
        ),
        Variant(BASELINE, "confluent-kafka, pre-encoded bytes, oncepipe's settings", raw(True)),
        Variant(
            "oncepipe send_all (pre-encoded)",
            f"EventProducer.send_all in chunks of {CHUNK}, pre-encoded records",
            oncepipe(False),
        ),
        Variant(
            "oncepipe encode + headers + send_all",
            f"Codec.encode_batch + event_headers + EventProducer.send_all, chunks of {CHUNK}",
            oncepipe(True),
        ),
        Variant(
            "oncepipe send (pipelined, pre-encoded)",
            "EventProducer.send of every pre-encoded record, then one flush",
            pipelined(False),
        ),
        Variant(
            "oncepipe encode + headers + send (pipelined)",
            f"Codec.encode_batch + event_headers in chunks of {CHUNK}, EventProducer.send, flush",
            pipelined(True),
        ),
    ]


@contextmanager
def frozen_input() -> Iterator[None]:
    """Keep every object alive now out of the garbage collector's full passes until the end."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_produce(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Run the produce benchmark for both event sizes."""
    result = SuiteResult("produce", quick=quick)
    codec = Codec.load()
    counts = {"click": 30_000 if quick else 100_000, "click-2k": 10_000 if quick else 30_000}
    for kind in EVENT_KINDS:
        data = EventSet.build(kind, counts[kind], codec)
        with env.topic("produce") as topic:
            variants = _variants(env, topic, data, codec)
            with frozen_input():
                samples = interleave(runs, variants)
        result.add_case(
            kind,
            variants,
            samples,
            baseline=BASELINE,
            params={"events": counts[kind], "event_bytes": data.median_bytes, "partitions": 6},
        )
    return result
