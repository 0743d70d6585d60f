"""The cost of tracing a consumer: off, on with the API's no-op, on with the SDK exporting.

Every variant runs oncepipe's ``ConsumerRuntime`` with the click handler over the same topic,
whose records each carry a ``traceparent`` (a trace of their own), interleaved:

- ``off``: ``ONCEPIPE_TRACING=off`` (``tracing.set_enabled(False)``): no header read, no span;
- ``on, API no-op``: what a worker does without the ``[tracing]`` extra or an exporter: the
  OpenTelemetry API's no-op spans (a batch span; no links, no per-event spans);
- ``on, SDK in-memory``: the SDK with a batch span processor (as ``OTEL_TRACES_EXPORTER``
  sets up) exporting to the SDK's in-memory exporter: a batch span with a link per event and
  a span per event; the network cost of a real OTLP exporter is not in it.

``python -m bench --only tracing`` (``--quick`` for a run of seconds).

Public names: ``run_tracing``.
"""

from __future__ import annotations

import random

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.consume import PARTITIONS, Clock, run_until
from bench.env import BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from oncepipe import tracing
from schemas import Codec

__all__ = ["run_tracing"]

OFF = "tracing off"
NO_OP = "tracing on, API no-op (no SDK)"
SDK = "tracing on, SDK + in-memory exporter"
BATCH = 500
RESET = (
    "TRUNCATE public.click_events, public.item_click_counts, public.user_item_click_counts,"
    " oncepipe.inbox, oncepipe.consumer_offsets, oncepipe.consumer_owners"
)


def _traced(data: EventSet) -> EventSet:
    """The events with a ``traceparent`` each, as an upstream with tracing would send them."""
    rng = random.Random(22)
    for headers in data.headers:
        trace_id, span_id = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
        headers.append(("traceparent", f"00-{trace_id:032x}-{span_id:016x}-01"))
    return data


def _run(env: BenchEnv, topic: str, total: int, cpu: ServiceCpu, mode: str) -> Sample:
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracing.set_enabled(mode != OFF)
    tracing.install(provider if mode == SDK else None)
    clock = Clock(cpu, total)
    try:
        run_until(env, topic, total, clock, batch_size=BATCH)
    finally:
        provider.shutdown()
        tracing.install(None)
        tracing.set_enabled(True)
    if mode == SDK and not exporter.get_finished_spans():
        raise RuntimeError("the SDK variant exported no span: the benchmark measures nothing")
    return clock.sample()


def run_tracing(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Consumer throughput with tracing off, on (no-op API) and on (SDK), click, batch 500."""
    result = SuiteResult("tracing", quick=quick)
    total = 6_000 if quick else 40_000
    cpu = ServiceCpu()
    data = _traced(EventSet.build("click", total, Codec.load()))
    with env.topic("tracing", PARTITIONS) as topic:
        raw_send(Producer(raw_config(env, idempotent=True)), topic, data)
        variants = [
            Variant(OFF, "ConsumerRuntime + click handler, ONCEPIPE_TRACING=off",
                    lambda: _run(env, topic, total, cpu, OFF)),
            Variant(NO_OP, "the same, tracing on without an SDK (the default)",
                    lambda: _run(env, topic, total, cpu, NO_OP)),
            Variant(SDK, "the same, SDK with a batch span processor to the in-memory exporter",
                    lambda: _run(env, topic, total, cpu, SDK)),
        ]  # fmt: skip
        result.add_case(
            f"click, batch {BATCH}",
            variants,
            interleave(runs, variants),
            baseline=OFF,
            params={"events": total, "batch": BATCH},
        )
    return result
