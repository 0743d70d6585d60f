"""When faults happen: a seeded random schedule, or a fixed script.

The schedule is drawn from the seed before the run starts, and each fault gets its own random
generator derived from the seed and its position, so the same seed replays the same faults at
the same moments with the same targets (timing of the system under test aside).

Public names: ``PlannedFault``, ``plan_faults``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.faults.chaos.config import (
    CLUSTER_KINDS,
    FAULT_KINDS,
    NETWORK_KINDS,
    POISON_KINDS,
    ChaosConfig,
    FaultKind,
)
from tests.faults.chaos.queue_mode import applicable_kinds

__all__ = ["PlannedFault", "plan_faults"]


@dataclass(frozen=True)
class PlannedFault:
    """A fault to inject at ``at_s`` seconds into the run."""

    at_s: float
    kind: FaultKind
    seed: int
    option: str = ""

    def rng(self) -> random.Random:
        """This fault's own generator (targets, pauses, options)."""
        return random.Random(self.seed)  # reproducible chaos, not secrets


def plan_faults(config: ChaosConfig) -> list[PlannedFault]:
    """The faults of a run: its script, or seeded random times and kinds."""
    rng = random.Random(config.seed)
    if config.script is not None:
        return [PlannedFault(s.at_s, s.kind, rng.getrandbits(32), s.option) for s in config.script]
    kinds = [k for k in config.kinds if k in FAULT_KINDS]
    if not config.raw_poison:
        kinds = [k for k in kinds if k != "poison_records"]
    if not config.network:
        kinds = [k for k in kinds if k not in NETWORK_KINDS]
    if config.brokers < 3:
        kinds = [k for k in kinds if k not in CLUSTER_KINDS]
    if not config.poison_policies:
        kinds = [k for k in kinds if k not in POISON_KINDS]
    kinds = applicable_kinds(config, kinds)
    weights = [FAULT_KINDS[k] for k in kinds]
    planned: list[PlannedFault] = []
    at = rng.uniform(3.0, 8.0)  # the pipeline gets a few seconds to form its group first
    while at < config.duration_s:
        kind = rng.choices(kinds, weights)[0]
        planned.append(PlannedFault(round(at, 1), kind, rng.getrandbits(32)))
        at += min(3 * config.mean_gap_s, max(0.5, rng.expovariate(1 / config.mean_gap_s)))
    return planned
