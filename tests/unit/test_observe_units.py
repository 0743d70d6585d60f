"""Record coordinates on log lines, hooks fanned out, metrics settings: no services needed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry

from consumers.events import InboundEvent
from consumers.logcontext import handler_scope
from oncepipe.errors import ConfigError
from oncepipe.hooks import BatchFailed, FanOut, NoHooks
from oncepipe.logging import configure_logging
from oncepipe.metrics import WorkerMetrics, load_metrics_settings
from oncepipe.settings import load_settings
from schemas import ClickEvent
from tests.fixtures.workers import make_clicks


def inbound(offset: int, event: ClickEvent) -> InboundEvent:
    return InboundEvent(event, event.event_id, "clicks", 2, offset)


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> Iterator[io.StringIO]:
    """Logging configured for JSON lines into a buffer."""
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    monkeypatch.setenv("ONCEPIPE_LOG_FORMAT", "json")
    configure_logging(load_settings())
    yield buffer
    structlog.reset_defaults()


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_lines_logged_while_a_handler_iterates_carry_that_events_coordinates(
    json_lines: io.StringIO,
) -> None:
    events = [inbound(n, e) for n, e in enumerate(make_clicks(3, seed=1), start=10)]
    stdlib = logging.getLogger("shop")
    with handler_scope("g1", events) as scoped:
        for event in scoped:
            stdlib.info("stdlib line")
            structlog.get_logger().info("structlog line", seen=event.offset)
        structlog.get_logger().info("after the loop")
    structlog.get_logger().info("outside")
    out = lines(json_lines)
    about = [line for line in out if line["event"] in {"stdlib line", "structlog line"}]
    assert len(about) == 6
    for line, event in zip(about, [e for e in events for _ in (1, 2)], strict=True):
        assert line["consumer_group"] == "g1"
        assert (line["topic"], line["partition"], line["offset"]) == ("clicks", 2, event.offset)
        assert line["event_id"] == str(event.event_id)
    after, outside = out[-2], out[-1]
    assert after["consumer_group"] == "g1"
    assert "offset" not in after
    assert "consumer_group" not in outside
    assert "offset" not in outside


def test_a_handler_call_with_one_event_names_it_on_every_line(json_lines: io.StringIO) -> None:
    (event,) = [inbound(7, e) for e in make_clicks(1, seed=2)]
    with handler_scope("g2", [event]) as scoped:
        assert scoped[0] is event
        assert len(scoped) == 1
        assert list(scoped[0:1]) == [event]
        structlog.get_logger().info("one")
    (line,) = lines(json_lines)
    assert (line["offset"], line["event_id"]) == (7, str(event.event_id))


def test_fan_out_calls_every_hook_in_turn() -> None:
    heard: list[str] = []

    class Ear(NoHooks):
        def __init__(self, name: str) -> None:
            self.name = name

        def batch_failed(self, batch: BatchFailed) -> None:
            heard.append(f"{self.name}:{batch.reason}")

        def heartbeat(self) -> None:
            heard.append(f"{self.name}:beat")

    hooks = FanOut(Ear("a"), Ear("b"))
    hooks.batch_failed(BatchFailed("g", "fenced", 3))
    hooks.heartbeat()
    assert heard == ["a:fenced", "b:fenced", "a:beat", "b:beat"]


def test_metrics_are_off_without_a_port_and_a_bad_port_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONCEPIPE_METRICS_PORT", raising=False)
    assert load_metrics_settings().port is None
    assert load_metrics_settings(port=9464).port == 9464
    monkeypatch.setenv("ONCEPIPE_METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="ONCEPIPE_METRICS_PORT"):
        load_metrics_settings()


def test_schema_lookups_are_counted_by_outcome() -> None:
    metrics = WorkerMetrics(CollectorRegistry(), "g")
    lookup = metrics.counting_lookup(lambda fp: None if fp == "missing" else "{}")
    lookup("missing")
    lookup("known")
    lookup("known")
    registry = metrics.registry
    assert registry.get_sample_value("oncepipe_schema_lookups_total", {"outcome": "found"}) == 2
    assert registry.get_sample_value("oncepipe_schema_lookups_total", {"outcome": "missing"}) == 1
