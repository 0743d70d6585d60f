"""Faults of the parallel relays: one stalled past its shard leases.

``Injector`` (faults.py) inherits these; each takes ``(record, rng, option)`` like the others.

Public names: ``RelayFaults``, ``RELAY_LEASE_S``.
"""

from __future__ import annotations

import random
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.faults.chaos.faults import FaultRecord
    from tests.faults.chaos.pipeline import Pipeline

__all__ = ["RELAY_LEASE_S", "RelayFaults"]

# The chaos relays' shard lease (ONCEPIPE_RELAY_LEASE_S): short, so fail-overs happen in the run.
RELAY_LEASE_S = 3.0


class RelayFaults:
    """Relay faults (a mixin of ``Injector``)."""

    pipeline: Pipeline

    def _relay_stall(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """SIGSTOP a relay at a random moment (mid-pass or idle) for longer than its lease:
        the others take its shards over; on SIGCONT it finishes the pass it was in (copies for
        the inbox), learns at its next renewal that it lost them, and gets a share back."""
        relays = [p for p in self.pipeline.workers.of("relay") if p.alive()]
        if not relays:
            raise RuntimeError("no live relay")
        proc = rng.choice(sorted(relays, key=lambda p: p.name))
        proc.held = True
        record.target = proc.name
        proc.signal(signal.SIGSTOP)
        stalled_for = RELAY_LEASE_S + rng.uniform(1.0, 4.0)
        time.sleep(stalled_for)
        proc.signal(signal.SIGCONT)
        record.detail = f"SIGSTOP for {stalled_for:.1f}s (lease {RELAY_LEASE_S:.0f}s)"
        proc.held = False
