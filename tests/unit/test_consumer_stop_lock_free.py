"""``ConsumerRuntime.stop`` is called from the SIGTERM handler, which runs on the main thread
between two bytecodes: possibly inside a ``threading.Event.wait`` of that same thread, while it
holds the event's own lock (not reentrant). A ``stop`` that took that lock would wait forever."""

from __future__ import annotations

import threading

from pydantic import SecretStr

from consumers.registry import resolve
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.settings import Settings
from schemas import Codec


def _runtime() -> ConsumerRuntime:
    settings = Settings(
        database_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"),
        kafka_bootstrap_servers="127.0.0.1:1",
    )
    config = ConsumerSettings(group="g", topics=("t",), handler="clicks", retry_max_s=60.0)
    return ConsumerRuntime(settings, config, decoder=Codec.load(), handler=resolve("clicks"))


def test_stop_returns_while_the_runtime_s_own_events_are_held_and_ends_a_backoff_wait() -> None:
    runtime = _runtime()
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
    assert runtime.stopping
    # A backoff wait (up to retry_max_s) sees the stop at once.
    runtime._pause("test")
