"""Jittered exponential backoff between attempts after transient failures.

Public names: ``Backoff``.
"""

from __future__ import annotations

from tenacity import RetryCallState, Retrying, wait_random_exponential

__all__ = ["Backoff"]


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
