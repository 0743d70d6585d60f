"""The cost of observing a consumer: metrics and health endpoint on beside off, one run.

Both variants run oncepipe's ``ConsumerRuntime`` with the click handler over the same topic,
interleaved. "on" is what ``--metrics-port`` does in production (``cli.observe``): the
metrics hooks, the HTTP endpoint on its threads, and here a scraper reading ``/metrics``
(lag query and watermarks included) every ``SCRAPE_EVERY_S`` seconds, far more often than
Prometheus' default 15 s, so the figure is an upper bound.

``python -m bench --only observe`` (``--quick`` for a short run).

Public names: ``run_observe``.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
import uuid
from collections.abc import Sequence

from bench.consume import PARTITIONS, Clock
from bench.env import BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from cli.observe import observe_consumer
from consumers.context import HandlerContext
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import BatchStarted, NoHooks
from oncepipe.metrics import MetricsSettings
from schemas import Codec

__all__ = ["run_observe"]

OFF = "metrics off"
ON = "metrics on (--metrics-port, scraped every second)"
SCRAPE_EVERY_S = 1.0
BATCH = 500
RESET = (
    "TRUNCATE public.click_events, public.item_click_counts, public.user_item_click_counts,"
    " oncepipe.inbox, oncepipe.consumer_offsets, oncepipe.consumer_owners"
)


class _Timed(NoHooks):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def batch_started(self, batch: BatchStarted) -> None:
        self._clock.mark(batch.events)


def _free_port() -> int:
    """A port in this checkout's range (Kafka's port + 100..199), never outside it."""
    base = int(os.environ.get("ONCEPIPE_INFRA_KAFKA_PORT", "29092"))
    for port in range(base + 100, base + 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base + 100}..{base + 199}")


def _scrape(port: int, stop: threading.Event) -> None:
    while not stop.wait(SCRAPE_EVERY_S):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            answer.read()


def _run(env: BenchEnv, topic: str, total: int, cpu: ServiceCpu, *, metrics: bool) -> Sample:
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)
    clock = Clock(cpu, total)
    group = f"bench-{uuid.uuid4().hex[:8]}"
    settings = ConsumerSettings(
        group=group, topics=(topic,), handler="clicks", batch_size=BATCH, batch_timeout_s=1.0
    )
    port = _free_port()
    observed = observe_consumer(
        env.settings, MetricsSettings(port=port if metrics else None), _Timed(clock), group
    )
    holder: list[ConsumerRuntime] = []

    def handler(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        handle_clicks(events, tx)
        if clock.events >= total:
            holder[0].stop()

    runtime = ConsumerRuntime(
        env.settings, settings, decoder=Codec.load(), handler=handler, hooks=observed.hooks
    )
    holder.append(runtime)
    stop = threading.Event()
    scraper = threading.Thread(target=_scrape, args=(port, stop), daemon=True)
    if metrics:
        scraper.start()
    try:
        runtime.run()
    finally:
        stop.set()
        if metrics:
            scraper.join(15)
        observed.close()
    return clock.sample()


def run_observe(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Consumer throughput with metrics on against off (click events, batch 500)."""
    result = SuiteResult("observe", quick=quick)
    total = 20_000 if quick else 60_000
    codec = Codec.load()
    cpu = ServiceCpu()
    data = EventSet.build("click", total, codec)
    with env.topic("observe", PARTITIONS) as topic:
        raw_send(Producer(raw_config(env, idempotent=True)), topic, data)
        variants = [
            Variant(OFF, "ConsumerRuntime + click handler, NO_HOOKS", lambda: _run(
                env, topic, total, cpu, metrics=False)),
            Variant(ON, "the same with cli.observe's metrics hooks, endpoint and a scraper",
                    lambda: _run(env, topic, total, cpu, metrics=True)),
        ]  # fmt: skip
        result.add_case(
            f"click, batch {BATCH}",
            variants,
            interleave(runs, variants),
            baseline=OFF,
            params={"events": total, "batch": BATCH, "scrape_every_s": SCRAPE_EVERY_S},
        )
    return result
