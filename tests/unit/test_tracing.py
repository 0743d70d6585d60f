"""Tracing plumbing without services: propagation headers and the worker's start-up choice."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from oncepipe import tracing
from oncepipe.errors import ConfigError


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
