"""A token bucket per client: ``rate`` requests per second, bursts up to ``burst``.

In-process: with one server process (the default) the limit is exact; behind several
processes each enforces its share. Public names: ``RateLimiter``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Admit or refuse one request of a client; refusals say when to retry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def admit(self, client: str, rate: float, burst: int) -> int:
        """0 when admitted, else the whole seconds to wait (for ``Retry-After``)."""
        now = self._clock()
        tokens, at = self._buckets.get(client, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0
        self._buckets[client] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))
