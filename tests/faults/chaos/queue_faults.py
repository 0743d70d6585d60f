"""Faults of queue mode (``--mode queue``): a worker stalled past its record locks.

``lock_stall``: a queue worker SIGSTOPped for the group's lock duration plus 2-5 s, so its
records' locks expire while it stays a member (its share session, 45 s, outlives the stall):
the share group hands the records to another member, and the stalled one, resumed, commits a
transaction whose events the other member applied already (the inbox absorbs it) and sees its
acknowledgements refused. The ``zombie`` fault stops a worker past its share session as well.

Public names: ``QueueFaults``.
"""

from __future__ import annotations

import random
import signal
import time
from typing import TYPE_CHECKING

from tests.faults.chaos.queue_mode import LOCK_DURATION_MS

if TYPE_CHECKING:
    from tests.faults.chaos.faults import FaultRecord
    from tests.faults.chaos.pipeline import Pipeline

__all__ = ["QueueFaults"]


class QueueFaults:
    """Queue-mode faults (a mixin of ``Injector``)."""

    pipeline: Pipeline

    def _lock_stall(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """SIGSTOP one live worker past its locks, within its share session; then SIGCONT."""
        procs = [p for p in self.pipeline.workers.of("consumer") if p.alive()]
        if not procs:
            raise RuntimeError("no live consumer")
        proc = rng.choice(sorted(procs, key=lambda p: p.name))
        proc.held = True
        record.target = proc.name
        proc.signal(signal.SIGSTOP)
        stalled_for = LOCK_DURATION_MS / 1000 + rng.uniform(2.0, 5.0)
        time.sleep(stalled_for)
        proc.signal(signal.SIGCONT)
        record.detail = f"SIGSTOP past the {LOCK_DURATION_MS / 1000:g}s lock: {stalled_for:.1f}s"
        proc.held = False
