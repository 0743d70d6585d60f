"""Trace context through the pipeline (W3C ``traceparent``/``tracestate``) and the workers' spans.

Only the OpenTelemetry API is a dependency. Without an SDK every span is the API's no-op, and a
context read from a record still passes through to the events derived from it (the API's
no-op span carries its parent's context). ``setup_from_environment`` installs the SDK at a
worker's start when the ``[tracing]`` extra is installed and ``OTEL_TRACES_EXPORTER`` asks for
an exporter; ``ONCEPIPE_TRACING=off`` turns the instrumentation off altogether (no header is
read or written).

Spans, named and tagged after OpenTelemetry's messaging conventions (messaging.system=kafka):

- ``send <topic>`` (PRODUCER): one per outbox row the relay publishes, a child of the row's
  context, ended with the broker's answer. One per row rather than one per pass: each row
  belongs to its own trace, and a child span puts the publish in that trace (a batch span
  would sit in a trace of its own, reachable from an event's trace only through links).
- ``process <group>`` (CONSUMER): one per consumer batch, linked to each event's context.
- ``process <topic>`` (CONSUMER): one per new event handed to the handler, a child of the
  event's context (so one trace runs from ``enqueue`` to the last handler) and linked to its
  batch span. Derived events (``tx.emit``) carry this span's context.
- ``replay <topic>`` (PRODUCER): one per chunk ``oncepipe dlq replay`` sends, linked to each
  dead letter's original context (the replay keeps the original ``traceparent``).

Public names: ``TRACE_HEADERS``, ``Traced``, ``attached``, ``batch_span``, ``context_of``,
``current_headers``, ``end_send``, ``extract``, ``handler_spans``, ``install``, ``links_span``,
``set_enabled``, ``setup_from_environment``, ``setup_worker``, ``start_send``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from oncepipe.errors import ConfigError

__all__ = [
    "TRACE_HEADERS",
    "Traced",
    "attached",
    "batch_span",
    "context_of",
    "current_headers",
    "end_send",
    "extract",
    "handler_spans",
    "install",
    "links_span",
    "set_enabled",
    "setup_from_environment",
    "setup_worker",
    "start_send",
]

TRACE_HEADERS = ("traceparent", "tracestate")
SYSTEM = "kafka"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "oncepipe"


class _State:
    """The instrumentation's switch and tracer (a proxy following the global provider)."""

    enabled = True
    tracer: trace.Tracer = trace.get_tracer(_TRACER_NAME)


_state = _State()

RawHeaders = Sequence[tuple[str, str | bytes | None]]


class Traced(Protocol):
    """A record read from Kafka: where it sits, its event id and its headers."""

    @property
    def topic(self) -> str: ...  # noqa: D102
    @property
    def partition(self) -> int: ...  # noqa: D102
    @property
    def offset(self) -> int: ...  # noqa: D102
    @property
    def event_id(self) -> Any: ...  # noqa: D102
    @property
    def headers(self) -> RawHeaders: ...  # noqa: D102


def set_enabled(enabled: bool) -> None:
    """Turn the instrumentation on or off (off: no span, no trace header read or written)."""
    _state.enabled = enabled


def install(provider: TracerProvider | None) -> None:
    """Make spans with ``provider`` (None: the global one, the API's no-op until an SDK is set)."""
    source = provider if provider is not None else trace.get_tracer_provider()
    _state.tracer = source.get_tracer(_TRACER_NAME)


# -- propagation ---------------------------------------------------------------------------


def current_headers() -> list[tuple[str, str]]:
    """``traceparent`` (and ``tracestate``) of the caller's current span; none without one."""
    if not _state.enabled:
        return []
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(name, carrier[name]) for name in TRACE_HEADERS if name in carrier]


def _text(raw: str | bytes) -> str:
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw


def extract(headers: RawHeaders) -> Context | None:
    """The trace context a record's headers carry; None without a valid ``traceparent``."""
    if not _state.enabled:
        return None
    carrier = {name: _text(raw) for name, raw in headers if name in TRACE_HEADERS and raw}
    if "traceparent" not in carrier:
        return None
    found = _PROPAGATOR.extract(carrier)
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def context_of(span: Span | None, headers: RawHeaders | None) -> Context | None:
    """The context a derived event continues: its handler span's, else its record's headers'."""
    if not _state.enabled:
        return None
    if span is not None:
        return trace.set_span_in_context(span)
    return extract(headers) if headers is not None else None


@contextmanager
def attached(found: Context | None) -> Iterator[None]:
    """Make ``found`` the current context inside the block (nothing when None)."""
    if found is None:
        yield
        return
    token = otel_context.attach(found)
    try:
        yield
    finally:
        otel_context.detach(token)


def _link_all(span: Span, records: Iterable[RawHeaders]) -> None:
    """Link ``span`` to each record's context (only a recording span keeps links)."""
    if not span.is_recording():
        return
    for headers in records:
        found = extract(headers)
        if found is not None:
            span.add_link(trace.get_current_span(found).get_span_context())


def _event_id(headers: RawHeaders) -> str | None:
    for name, raw in headers:
        if name == "event_id" and raw is not None:
            return _text(raw)
    return None


# -- the relay: one send span per row ------------------------------------------------------


def start_send(topic: str, headers: RawHeaders) -> Span | None:
    """Open the ``send`` span of one outbox row, a child of its context; None when off."""
    if not _state.enabled:
        return None
    attributes: dict[str, str] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
    }
    event_id = _event_id(headers)
    if event_id is not None:
        attributes["messaging.message.id"] = event_id
    return _state.tracer.start_span(
        f"send {topic}", context=extract(headers) or Context(), kind=SpanKind.PRODUCER,
        attributes=attributes,
    )  # fmt: skip


def end_send(
    span: Span | None, partition: int | None, offset: int | None, error: str | None
) -> None:
    """End a ``send`` span with the broker's answer: where the record landed, or why not."""
    if span is None:
        return
    if span.is_recording():
        if partition is not None and partition >= 0:
            span.set_attribute("messaging.destination.partition.id", str(partition))
        if offset is not None and offset >= 0:
            span.set_attribute("messaging.kafka.offset", offset)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
    span.end()


@contextmanager
def links_span(name: str, topic: str, headers: Sequence[RawHeaders]) -> Iterator[Span | None]:
    """A PRODUCER span (``<name> <topic>``) linked to the context of every record given."""
    if not _state.enabled:
        yield None
        return
    with _state.tracer.start_as_current_span(
        f"{name} {topic}", kind=SpanKind.PRODUCER,
        attributes={"messaging.system": SYSTEM, "messaging.operation.type": "send",
                    "messaging.operation.name": name, "messaging.destination.name": topic,
                    "messaging.batch.message_count": len(headers)},
    ) as span:  # fmt: skip
        _link_all(span, headers)
        yield span


# -- the consumer: a batch span, a span per handled event ----------------------------------


@contextmanager
def batch_span(group: str, events: Sequence[Traced]) -> Iterator[None]:
    """The batch's ``process`` span, current inside the block, linked to each event's context."""
    if not _state.enabled:
        yield
        return
    with _state.tracer.start_as_current_span(
        f"process {group}", kind=SpanKind.CONSUMER,
        attributes={"messaging.system": SYSTEM, "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.consumer.group.name": group,
                    "messaging.batch.message_count": len(events)},
    ) as span:  # fmt: skip
        _link_all(span, (event.headers for event in events))
        yield


@contextmanager
def handler_spans(
    group: str, events: Sequence[Traced]
) -> Iterator[Mapping[tuple[str, int, int], Span]]:
    """A ``process`` span per event around the handler call, by (topic, partition, offset).

    Each is a child of its event's context (of the batch span for an event without one) and
    linked to the batch span. Without an SDK (the batch span has no valid context: the API's
    no-op) there are none: derived events then carry their record's own context
    (``context_of``). An SDK's unsampled batch span is valid: sampled events still get theirs.
    """
    batch = trace.get_current_span()
    if not _state.enabled or not batch.get_span_context().is_valid:
        yield {}
        return
    spans: dict[tuple[str, int, int], Span] = {}
    for event in events:
        found = extract(event.headers)
        spans[(event.topic, event.partition, event.offset)] = _state.tracer.start_span(
            f"process {event.topic}", context=found, kind=SpanKind.CONSUMER,
            links=[Link(batch.get_span_context())] if found is not None else None,
            attributes={"messaging.system": SYSTEM, "messaging.operation.type": "process",
                        "messaging.operation.name": "process",
                        "messaging.destination.name": event.topic,
                        "messaging.destination.partition.id": str(event.partition),
                        "messaging.kafka.offset": event.offset,
                        "messaging.message.id": str(event.event_id),
                        "messaging.consumer.group.name": group},
        )  # fmt: skip
    try:
        yield spans
    except BaseException as exc:
        for span in spans.values():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        for span in spans.values():
            span.end()


# -- a worker's start ------------------------------------------------------------------------

_OFF = {"off", "false", "0", "no"}


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """The span exporter named ``name`` (``otlp``: as OTEL_EXPORTER_OTLP_PROTOCOL says)."""
    if name == "otlp":
        grpc = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip() == "grpc"
        name = "otlp_proto_grpc" if grpc else "otlp_proto_http"
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={name}: no such span exporter is installed; use otlp or "
            "console, or install the package that provides it"
        )
    return next(iter(found)).load()()


def setup_from_environment(service: str, environ: Mapping[str, str] | None = None) -> str:
    """Set up tracing at a worker's start from the standard ``OTEL_*`` variables.

    Installs the SDK with a batch span processor per exporter named in ``OTEL_TRACES_EXPORTER``
    (``otlp`` sends to ``OTEL_EXPORTER_OTLP_ENDPOINT``); the service is ``OTEL_SERVICE_NAME``,
    else ``service``. Returns what was done, for the worker's one log line. Raises
    ``ConfigError`` when an exporter is asked for and the ``[tracing]`` extra is missing.
    """
    env = os.environ if environ is None else environ
    if env.get("ONCEPIPE_TRACING", "").strip().lower() in _OFF:
        set_enabled(False)
        return "off (ONCEPIPE_TRACING=off): no span, no trace header"
    set_enabled(True)
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    names = [n for n in names if n != "none"]
    if not names:
        return "trace context passed on, spans not exported (no OTEL_TRACES_EXPORTER)"
    try:
        sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
        sdk_export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={','.join(names)} asks for spans to be exported but the "
            "OpenTelemetry SDK is not installed: pip install 'oncepipe[tracing]', or unset "
            "OTEL_TRACES_EXPORTER"
        ) from exc
    name = env.get("OTEL_SERVICE_NAME", "").strip() or service
    provider = sdk_trace.TracerProvider(resource=resources.Resource.create({"service.name": name}))
    for exporter in names:
        provider.add_span_processor(sdk_export.BatchSpanProcessor(_exporter(exporter, env)))
    trace.set_tracer_provider(provider)
    install(None)
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    where = f" to {endpoint}" if endpoint and "otlp" in names else ""
    return f"spans exported ({','.join(names)}{where}) as service {name}"


def setup_worker(service: str) -> None:
    """``setup_from_environment`` at a worker's start, and one log line saying what it did."""
    from oncepipe.logging import get_logger  # noqa: PLC0415 - logging imports settings, not us

    get_logger("tracing").info("tracing", mode=setup_from_environment(service))
