"""Jittered exponential backoff between attempts after transient failures.

Public names: ``Backoff``, ``sleep_unless``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, wait_random_exponential

__all__ = ["Backoff", "sleep_unless"]

# How often a wait looks whether the worker was asked to stop.
_STOP_CHECK_S = 0.1


def sleep_unless(stopped: Callable[[], bool], seconds: float) -> None:
    """Sleep ``seconds``, or less once ``stopped()`` is true (looked at every 0.1 s).

    In short sleeps rather than on a ``threading.Event``: a worker's ``stop`` runs in a signal
    handler on the main thread, possibly inside that thread's ``Event.wait`` while it holds the
    event's own lock (not reentrant), where an ``Event.set`` would wait forever.
    """
    until = time.monotonic() + seconds
    while not stopped() and (left := until - time.monotonic()) > 0:
        time.sleep(min(left, _STOP_CHECK_S))


class Backoff:
    """Delays for consecutive failures: random in [0, min(max, initial * 2**n)] (full jitter).

    Jitter keeps the workers of a group from hammering a recovering PostgreSQL in lockstep.
    """

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._wait = wait_random_exponential(multiplier=initial_s, max=max_s)
        self._initial_s = initial_s
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = self.failures
        # A floor of a tenth of the first delay: never retry in a hot loop.
        return max(self._initial_s / 10, float(self._wait(state)))

    def reset(self) -> None:
        """A success: the next failure starts from the first delay again."""
        self.failures = 0
