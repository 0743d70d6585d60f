from __future__ import annotations

from collections.abc import Sequence

import pytest

from consumers.context import HandlerContext
from consumers.events import InboundEvent
from consumers.registry import register, resolve
from oncepipe.errors import ConfigError


def noop(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
    return None


def test_clicks_is_registered_by_name() -> None:
    handler = resolve("clicks")
    assert handler.__name__ == "handle_clicks"


def test_module_function_references_resolve() -> None:
    assert resolve("tests.unit.test_consumer_registry:noop") is noop


def test_registered_handlers_resolve_by_their_name() -> None:
    register("unit-noop")(noop)
    assert resolve("unit-noop") is noop


@pytest.mark.parametrize(
    "spec", ["nope", "no.such.module:fn", "tests.unit.test_consumer_registry:missing"]
)
def test_unknown_handlers_are_a_configuration_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="handler"):
        resolve(spec)


def test_emit_without_an_outbox_sink_is_refused() -> None:
    context = HandlerContext(connection=None, cursor=None, consumer_group="g")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="outbox"):
        context.emit(object())  # type: ignore[arg-type]
