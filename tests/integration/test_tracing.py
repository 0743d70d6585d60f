"""One trace from an upstream ``enqueue`` to the last handler, through real Kafka and PostgreSQL.

The workers run in this process (threads) so their spans reach the SDK's in-memory exporter;
records go through the real broker and every effect through the real database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from consumers.batch import apply_batch
from consumers.context import HandlerContext, OutboxSink
from consumers.dlq.replay import Replayer
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe import tracing
from oncepipe.errors import PoisonError
from oncepipe.settings import Settings
from producers import enqueue
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from schemas import ClickEvent, Codec
from tests.fixtures.kafka import read_topic
from tests.fixtures.poison import dead_letters
from tests.fixtures.relay import pending_rows
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield provider, exporter
    tracing.install(None)


def traceparent_of(span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def derived_of(click: ClickEvent) -> ClickEvent:
    """The event a first group's handler emits for ``click`` (a stable id: reruns add nothing)."""
    return click.model_copy(
        update={"event_id": uuid.uuid5(click.event_id, "derived"), "item_id": "derived"}
    )


def publish_all(settings: Settings) -> None:
    """Publish every pending outbox row with an in-process relay."""
    relay = Relay(settings, RelaySettings(), ProducerSettings(linger_ms=1))
    try:
        wait_until(lambda: relay.run_once() >= 0 and pending_rows(settings) == 0, 60, "the relay")
    finally:
        relay.request_stop()
        relay.run()  # closes its connections and its producer


@contextmanager
def consuming(
    settings: Settings,
    group: str,
    topic: str,
    handler: Callable[[Sequence[InboundEvent], HandlerContext], None],
    sink: OutboxSink | None = None,
) -> Iterator[None]:
    """A consumer runtime of ``group`` in a thread for the block's length."""
    config = ConsumerSettings(
        group=group, topics=(topic,), handler="clicks", batch_size=100, batch_timeout_s=0.3,
        session_timeout_ms=6000,
    )  # fmt: skip
    runtime = ConsumerRuntime(settings, config, decoder=Codec.load(), handler=handler, sink=sink)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        runtime.stop()
        thread.join(60)
    assert not thread.is_alive(), "the runtime did not stop within 60s"


def to_topic(topic: str) -> OutboxSink:
    codec = Codec.load()

    def write(conn: psycopg.Connection, event) -> object:
        return enqueue(conn, event, codec=codec, topic=topic)

    return write


class FirstGroup:
    """Counts clicks and emits a derived click for each; refuses ``poison`` items until fixed."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        for inbound in events:
            assert isinstance(inbound.event, ClickEvent)
            if inbound.event.item_id.startswith("poison") and not self.fixed:
                raise PoisonError("item retired")
        handle_clicks(events, tx)
        for inbound in events:  # iterating makes each event the current one: emit continues it
            assert isinstance(inbound.event, ClickEvent)
            tx.emit(derived_of(inbound.event))


def named(finished: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def linked_to(span: ReadableSpan, upstream) -> bool:
    want = upstream.get_span_context()
    return any(
        (link.context.trace_id, link.context.span_id) == (want.trace_id, want.span_id)
        for link in span.links
    )


def test_one_trace_runs_from_enqueue_through_the_relay_to_a_second_group_s_handler(
    worker_pool: WorkerPool, make_topic: Callable[..., str], spans
) -> None:
    provider, exporter = spans
    settings, source = worker_pool.settings, worker_pool.topic
    derived_topic = make_topic("derived", 2)
    url = settings.database_url.get_secret_value()
    click, untraced = make_clicks(2, seed=22)
    with (
        provider.get_tracer("upstream").start_as_current_span("place order") as upstream,
        psycopg.connect(url) as conn,
    ):
        assert enqueue(conn, click, codec=Codec.load(), topic=source)
    with psycopg.connect(url) as conn:  # no span: no trace header
        assert enqueue(conn, untraced, codec=Codec.load(), topic=source)
    trace_id = upstream.get_span_context().trace_id
    publish_all(settings)

    # The header reaches Kafka as the outbox row recorded it.
    records = read_topic(settings.kafka_bootstrap_servers, source, expected=2)
    by_id = {r.headers["event_id"]: r.headers for r in records}
    assert by_id[str(click.event_id)]["traceparent"] == traceparent_of(upstream)
    assert "traceparent" not in by_id[str(untraced.event_id)]

    first, second = worker_pool.group, f"{worker_pool.group}-2"
    with consuming(settings, first, source, FirstGroup(), sink=to_topic(derived_topic)):
        wait_until(caught_up(url, first, 2), 60, "the first group")
    publish_all(settings)
    with consuming(settings, second, derived_topic, handle_clicks):
        wait_until(caught_up(url, second, 2), 60, "the second group")
    with psycopg.connect(url) as conn:
        applied = conn.execute(
            "SELECT event_id FROM public.click_events WHERE consumer_group = %s", (second,)
        ).fetchall()
    assert {row[0] for row in applied} == {
        derived_of(click).event_id,
        derived_of(untraced).event_id,
    }

    finished = exporter.get_finished_spans()
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    upstream_id = upstream.get_span_context().span_id

    def message(span: ReadableSpan) -> str:
        return str((span.attributes or {}).get("messaging.message.id"))

    # The relay's send span of the row: a child of the upstream span.
    (send,) = [s for s in named(in_trace, f"send {source}") if message(s) == str(click.event_id)]
    assert send.parent is not None
    assert send.parent.span_id == upstream_id
    assert send.kind == SpanKind.PRODUCER
    assert (send.attributes or {})["messaging.system"] == "kafka"
    # The first group's handler span: a child of the upstream span, linked to its batch span.
    (handled,) = named(in_trace, f"process {source}")
    assert handled.parent is not None
    assert handled.parent.span_id == upstream_id
    attributes = handled.attributes or {}
    assert attributes["messaging.consumer.group.name"] == first
    assert attributes["messaging.message.id"] == str(click.event_id)
    assert attributes["messaging.destination.name"] == source
    (batch,) = [s for s in named(finished, f"process {first}") if linked_to(s, upstream)]
    assert any(link.context.span_id == batch.context.span_id for link in handled.links)
    # The derived event: its row carried the handler span's context to the relay and Kafka...
    derived_id = str(derived_of(click).event_id)
    (derived_send,) = [
        s for s in named(in_trace, f"send {derived_topic}") if message(s) == derived_id
    ]
    assert derived_send.parent is not None
    assert derived_send.parent.span_id == handled.context.span_id
    # ...and the second group's handler span is its child: the same trace, end to end.
    (last,) = named(in_trace, f"process {derived_topic}")
    assert last.parent is not None
    assert last.parent.span_id == handled.context.span_id
    assert (last.attributes or {})["messaging.consumer.group.name"] == second
    assert message(last) == derived_id
    # The untraced event's handler span is a child of its batch span, in the batch's trace.
    (plain,) = [
        s for s in named(finished, f"process {source}") if message(s) == str(untraced.event_id)
    ]
    assert plain.parent is not None
    assert plain.context.trace_id != trace_id
    assert plain.parent.span_id in {s.context.span_id for s in named(finished, f"process {first}")}


def test_a_dead_letter_replayed_later_links_to_the_original_trace(
    worker_pool: WorkerPool, dlq_topic: str, spans
) -> None:
    provider, exporter = spans
    settings, source = worker_pool.settings, worker_pool.topic
    url = settings.database_url.get_secret_value()
    click = make_clicks(1, seed=23)[0].model_copy(update={"item_id": "poison-1"})
    with (
        provider.get_tracer("upstream").start_as_current_span("place order") as upstream,
        psycopg.connect(url) as conn,
    ):
        assert enqueue(conn, click, codec=Codec.load(), topic=source)
    trace_id, upstream_id = (
        upstream.get_span_context().trace_id,
        upstream.get_span_context().span_id,
    )
    publish_all(settings)
    handler = FirstGroup()
    group = worker_pool.group
    with consuming(settings, group, source, handler, sink=to_topic(source + "-unused")):
        wait_until(caught_up(url, group, 1), 60, "the dead letter")
    publish_all(settings)

    # The dead letter keeps the original headers, traceparent included.
    (letter,) = dead_letters(settings, dlq_topic, expected=1)
    assert dict(letter.headers)["traceparent"] == traceparent_of(upstream).encode()
    (dead_send,) = named(exporter.get_finished_spans(), f"send {dlq_topic}")
    assert dead_send.context.trace_id == trace_id
    assert dead_send.parent is not None
    assert dead_send.parent.span_id == upstream_id

    handler.fixed = True
    exporter.clear()
    (outcome,) = Replayer(settings, ProducerSettings(linger_ms=1)).replay([letter])
    assert outcome.outcome == "sent"
    with consuming(settings, group, source, handler, sink=lambda *_: None):
        wait_until(caught_up(url, group, 2), 60, "the replay applied")
    with psycopg.connect(url) as conn:
        applied = conn.execute(
            "SELECT event_id FROM public.click_events WHERE consumer_group = %s", (group,)
        ).fetchall()
    assert [row[0] for row in applied] == [click.event_id]

    finished = exporter.get_finished_spans()
    (replay,) = named(finished, f"replay {source}")
    assert linked_to(replay, upstream)
    (batch,) = [s for s in named(finished, f"process {group}") if linked_to(s, upstream)]
    (handled,) = named(finished, f"process {source}")
    assert handled.context.trace_id == trace_id  # the replay is processed in the original trace
    assert handled.parent is not None
    assert handled.parent.span_id == upstream_id
    assert (handled.attributes or {})["messaging.message.id"] == str(click.event_id)
    assert any(link.context.span_id == batch.context.span_id for link in handled.links)


def test_without_an_sdk_a_derived_event_carries_its_source_s_trace_context(
    settings: Settings,
) -> None:
    tracing.install(None)  # the API's no-op: nothing recorded, the context still passes through
    source, derived = make_clicks(2, seed=24)
    header = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    events = [
        InboundEvent(event=source, event_id=source.event_id, topic="t", partition=0, offset=0,
                     headers=[("event_id", str(source.event_id)), ("traceparent", header.encode())])
    ]  # fmt: skip

    def emitting(new: Sequence[InboundEvent], tx: HandlerContext) -> None:
        tx.emit(derived)

    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        apply_batch(
            conn, settings=settings, group="g", events=events, positions={("t", 0): None},
            handler=emitting, sink=to_topic("t2"),
        )  # fmt: skip
        row = conn.execute(
            "SELECT header_names, header_values FROM oncepipe.outbox WHERE dedupe_id = %s",
            (str(derived.event_id),),
        ).fetchone()
    assert row is not None
    headers = dict(zip([bytes(n).decode() for n in row[0]], row[1], strict=True))
    assert bytes(headers["traceparent"]).decode() == header


def test_an_explicit_traceparent_wins_over_the_current_span(settings: Settings, spans) -> None:
    provider, _ = spans
    explicit = "00-" + "12" * 16 + "-" + "34" * 8 + "-01"
    first, second = make_clicks(2, seed=25)
    with (
        provider.get_tracer("t").start_as_current_span("upstream"),
        psycopg.connect(settings.database_url.get_secret_value()) as conn,
    ):
        enqueue(conn, first, codec=Codec.load(), topic="t", traceparent=explicit)
        enqueue(conn, second, codec=Codec.load(), topic="t")
        rows = conn.execute(
            "SELECT dedupe_id, header_names, header_values FROM oncepipe.outbox ORDER BY id"
        ).fetchall()
    traceparents = {
        dedupe: [bytes(v).decode() for n, v in zip(names, values, strict=True)
                 if bytes(n) == b"traceparent"]
        for dedupe, names, values in rows
    }  # fmt: skip
    assert traceparents[str(first.event_id)] == [explicit]
    (captured,) = traceparents[str(second.event_id)]
    assert captured != explicit
    assert captured.startswith("00-")
