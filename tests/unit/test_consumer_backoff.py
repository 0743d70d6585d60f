from __future__ import annotations

from consumers.backoff import Backoff


def test_delays_grow_with_jitter_up_to_the_cap_and_reset_after_success() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.01 <= d <= 2.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 1
    assert backoff.failures == 12
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() <= 0.2
