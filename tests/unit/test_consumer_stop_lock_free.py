"""A worker's ``stop`` is called from the SIGTERM handler, which runs on the main thread between
two bytecodes: possibly inside a ``threading.Event.wait`` of that same thread, while it holds
the event's own lock (not reentrant). A ``stop`` that took that lock would wait forever. Both
runtimes (partition and queue mode) are checked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import pytest
from pydantic import SecretStr

from consumers.queue_runtime import QueueRuntime
from consumers.queue_settings import QueueSettings
from consumers.registry import resolve
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.settings import Settings
from schemas import Codec


class Stoppable(Protocol):
    def stop(self) -> None: ...
    def _pause(self, reason: str) -> None: ...


def _settings() -> tuple[Settings, ConsumerSettings]:
    settings = Settings(
        database_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"),
        kafka_bootstrap_servers="127.0.0.1:1",
    )
    config = ConsumerSettings(group="g", topics=("t",), handler="clicks", retry_max_s=60.0)
    return settings, config


def _partition_runtime() -> ConsumerRuntime:
    settings, config = _settings()
    return ConsumerRuntime(settings, config, decoder=Codec.load(), handler=resolve("clicks"))


def _queue_runtime() -> QueueRuntime:
    settings, config = _settings()
    return QueueRuntime(
        settings, config, QueueSettings(), decoder=Codec.load(), handler=resolve("clicks")
    )


@pytest.mark.parametrize("make", [_partition_runtime, _queue_runtime], ids=["partition", "queue"])
def test_stop_returns_while_the_runtime_s_own_events_are_held_and_ends_a_backoff_wait(
    make: Callable[[], Stoppable],
) -> None:
    runtime = make()
    # The main thread caught between two bytecodes of Event.wait holds the event's lock.
    events = [v for v in vars(runtime).values() if isinstance(v, threading.Event)]
    held = [e._cond for e in events]  # type: ignore[attr-defined]
    for lock in held:
        lock.acquire()
    try:
        stopper = threading.Thread(target=runtime.stop, daemon=True)
        stopper.start()
        stopper.join(10)  # a bound on a hang, not a measure: stop does no waiting at all
        assert not stopper.is_alive(), "stop() blocked on a lock its caller may hold"
    finally:
        for lock in held:
            lock.release()
    # A backoff wait (up to retry_max_s) sees the stop at once: this call returns.
    runtime._pause("test")
