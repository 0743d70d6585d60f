"""Tracing plumbing without services: propagation headers and the worker's start-up choice."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from consumers.events import InboundEvent
from oncepipe import tracing
from oncepipe.errors import ConfigError
from tests.fixtures.workers import make_clicks


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracing.install(made)
    yield made
    tracing.install(None)
    tracing.set_enabled(True)


def traceparent(span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def test_the_current_span_becomes_the_traceparent_header(provider: TracerProvider) -> None:
    assert tracing.current_headers() == []  # no span: no header
    with provider.get_tracer("t").start_as_current_span("upstream") as span:
        assert tracing.current_headers() == [("traceparent", traceparent(span))]
        tracing.set_enabled(False)
        assert tracing.current_headers() == []


def test_a_record_s_headers_give_back_its_context_bytes_or_text(provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("upstream") as span:
        header = traceparent(span)
    for value in (header, header.encode()):
        found = tracing.extract([("event_id", "x"), ("traceparent", value)])
        assert found is not None
        ctx = trace.get_current_span(found).get_span_context()
        assert (ctx.trace_id, ctx.span_id) == (
            span.get_span_context().trace_id,
            span.get_span_context().span_id,
        )
    assert tracing.extract([("traceparent", b"garbage")]) is None
    assert tracing.extract([("traceparent", None)]) is None
    assert tracing.extract([]) is None


def test_no_exporter_keeps_the_api_s_no_op() -> None:
    mode = tracing.setup_from_environment("oncepipe-consumer", {})
    assert "not exported" in mode
    mode = tracing.setup_from_environment("x", {"OTEL_TRACES_EXPORTER": "none"})
    assert "not exported" in mode


def test_tracing_off_reads_and_writes_no_header() -> None:
    try:
        mode = tracing.setup_from_environment("x", {"ONCEPIPE_TRACING": "off"})
        assert mode.startswith("off")
        assert tracing.extract([("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]) is None
    finally:
        tracing.set_enabled(True)


def test_an_exporter_asked_for_without_the_extra_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.import_module

    def without_sdk(name: str) -> object:
        if name.startswith("opentelemetry.sdk"):
            raise ImportError(f"No module named {name!r}")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", without_sdk)
    with pytest.raises(ConfigError, match=r"pip install 'oncepipe\[tracing\]'"):
        tracing.setup_from_environment("x", {"OTEL_TRACES_EXPORTER": "otlp"})


def test_an_unknown_exporter_is_named() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER=zipkinx"):
        tracing.setup_from_environment("x", {"OTEL_TRACES_EXPORTER": "zipkinx"})


def _event(offset: int, header: str | None) -> InboundEvent:
    headers = [("traceparent", header.encode())] if header else []
    event_id = uuid.UUID(int=offset + 1)
    return InboundEvent(
        make_clicks(1, seed=offset)[0],
        event_id,
        topic="t",
        partition=0,
        offset=offset,
        headers=headers,
    )


def test_sampled_events_get_handler_spans_under_an_unsampled_batch_span() -> None:
    exporter = InMemorySpanExporter()
    made = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # roots (batch spans) not sampled
    made.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(made)
    sampled = "00-" + "a1" * 16 + "-" + "b2" * 8 + "-01"
    unsampled = "00-" + "c3" * 16 + "-" + "d4" * 8 + "-00"
    try:
        events = [_event(0, sampled), _event(1, unsampled)]
        with tracing.batch_span("g", events), tracing.handler_spans("g", events) as spans:
            assert set(spans) == {("t", 0, 0), ("t", 0, 1)}
    finally:
        tracing.install(None)
    (recorded,) = exporter.get_finished_spans()  # the sampled event's, and only it
    assert recorded.name == "process t"
    assert recorded.context.trace_id == int("a1" * 16, 16)
    assert recorded.parent is not None
    assert recorded.parent.span_id == int("b2" * 8, 16)


def test_without_an_sdk_there_are_no_handler_spans_and_emit_continues_the_record() -> None:
    tracing.install(None)
    header = "00-" + "a1" * 16 + "-" + "b2" * 8 + "-01"
    events = [_event(0, header)]
    with tracing.batch_span("g", events), tracing.handler_spans("g", events) as spans:
        assert spans == {}
        found = tracing.context_of(None, events[0].headers)
        with tracing.attached(found):
            assert tracing.current_headers() == [("traceparent", header)]


def test_otlp_sets_up_the_sdk_with_the_endpoint_and_service_asked_for() -> None:
    # In a child process: the global tracer provider can be set once per process.
    script = """
from opentelemetry import trace
from oncepipe import tracing
env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
       "OTEL_SERVICE_NAME": "shop-consumer"}
print(tracing.setup_from_environment("oncepipe-consumer", env))
provider = trace.get_tracer_provider()
print(type(provider).__module__, provider.resource.attributes["service.name"])
(processor,) = provider._active_span_processor._span_processors
# SDK internals: where the batch processor keeps its exporter moved across SDK versions.
exporter = getattr(processor, "span_exporter", None) or processor._batch_processor._exporter
print(type(exporter).__name__)
"""
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert shown == [
        "spans exported (otlp to http://127.0.0.1:9) as service shop-consumer",
        "opentelemetry.sdk.trace shop-consumer",
        "OTLPSpanExporter",
    ]
