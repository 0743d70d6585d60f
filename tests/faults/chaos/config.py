"""What one chaos run does: its size, its seed, and which faults it may inject.

Public names: ``ChaosConfig``, ``FaultKind``, ``ScriptedFault``, ``FAULT_KINDS``,
``NETWORK_KINDS``, ``CLUSTER_KINDS``, ``POISON_KINDS``, ``default_kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from consumers.settings import ConsumerSettings

DEFAULT_SESSION_TIMEOUT_MS: int = ConsumerSettings.model_fields["session_timeout_ms"].default

__all__ = [
    "CLUSTER_KINDS",
    "FAULT_KINDS",
    "NETWORK_KINDS",
    "POISON_KINDS",
    "ChaosConfig",
    "FaultKind",
    "ScriptedFault",
    "default_kinds",
]

FaultKind = Literal[
    "consumer_sigkill",
    "consumer_crash_point",
    "relay_sigkill",
    "relay_crash_point",
    "rolling_restart",
    "zombie",
    "member_added",
    "member_removed",
    "broker_sigkill",
    "broker_restart",
    "postgres_immediate",
    "backend_terminated",
    "outbox_gap",
    "poison_records",
    "leader_chase",
    "pg_path_cut",
    "pg_path_slow",
    "commit_reply_lost",
    "broker_path_cut",
    "broker_path_slow",
    "hostile_events",
    "hostile_poison",
    "near_limit_record",
    "second_group",
    "read_only_database",
    "partition_unavailable",
    "relay_stall",
    "poison_key",
    "killer_record",
    "flaky_dependency",
    "lock_stall",
]

# Relative weights of the seeded random schedule: cheap worker faults often, the ones that
# stop a whole service (and take 10-20 s each) less often, so a 10-minute run sees them all.
FAULT_KINDS: dict[FaultKind, int] = {
    "consumer_sigkill": 6,
    "consumer_crash_point": 5,
    "relay_sigkill": 4,
    "relay_crash_point": 4,
    "rolling_restart": 2,
    "zombie": 3,
    "member_added": 2,
    "member_removed": 2,
    "broker_sigkill": 2,
    "broker_restart": 1,
    "postgres_immediate": 2,
    "backend_terminated": 4,
    "outbox_gap": 4,
    "poison_records": 2,
    # Three brokers only: SIGKILL a partition's leader, restart it, chase the next leader.
    "leader_chase": 3,
    # --network only: faults on the proxied paths (tests.faults.chaos.network).
    "pg_path_cut": 3,
    "pg_path_slow": 2,
    "commit_reply_lost": 3,
    "broker_path_cut": 3,
    "broker_path_slow": 2,
    # Records no oncepipe producer writes, and outages that refuse work (hostile.py, outages.py).
    "hostile_events": 2,
    "hostile_poison": 2,
    "near_limit_record": 1,
    "second_group": 1,  # the first one starts a second group's consumer; later ones kill it
    "read_only_database": 2,
    "partition_unavailable": 2,  # three brokers only (outages.py says why)
    "relay_stall": 3,  # a relay SIGSTOPped past its shard leases (relay_faults.py)
    # With poison_policies only: marked records for the poison policies (poison_faults.py).
    "poison_key": 2,
    "killer_record": 1,  # each costs 2N restarts of a consumer
    "flaky_dependency": 2,
    "lock_stall": 3,  # --mode queue only: a worker SIGSTOPped past its locks (queue_faults.py)
}
NETWORK_KINDS: frozenset[FaultKind] = frozenset(
    {"pg_path_cut", "pg_path_slow", "commit_reply_lost", "broker_path_cut", "broker_path_slow"}
)
CLUSTER_KINDS: frozenset[FaultKind] = frozenset({"leader_chase", "partition_unavailable"})
POISON_KINDS: frozenset[FaultKind] = frozenset({"poison_key", "killer_record", "flaky_dependency"})


def default_kinds() -> tuple[FaultKind, ...]:
    """Every fault kind (the mode decides which of them a run can plan)."""
    return tuple(FAULT_KINDS)


@dataclass(frozen=True)
class ScriptedFault:
    """One fault at a fixed second of the run (short runs and defect rounds use a script)."""

    at_s: float
    kind: FaultKind
    option: str = ""  # e.g. the crash point to use


@dataclass(frozen=True)
class ChaosConfig:
    """One run: duration, seed, load and faults; the seed replays the same schedule."""

    duration_s: float = 600.0
    seed: int = 42
    events: int = 100_000  # distinct events over both simulators
    outbox_share: float = 0.6  # the rest goes straight to Kafka
    duplicate_rate: float = 0.1
    keys: int = 200
    items: int = 100
    partitions: int = 6
    consumers: int = 2  # members at the start; member faults move between 2 and 3
    max_consumers: int = 3
    relays: int = 2
    # The product's default (ConsumerSettings): the run proves the settings users get.
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    batch_size: int = 200
    # Submissions end this share into the run, so faults also hit a draining pipeline.
    load_share: float = 0.85
    mean_gap_s: float = 7.0  # mean pause between two random faults
    drain_timeout_s: float = 300.0
    # Known poison among the simulators' submissions (bad magic, truncated, invalid field),
    # and the poison_records fault's oversized and undecodable records straight on the topic.
    poison_rate: float = 0.002
    raw_poison: bool = True
    network: bool = False  # workers behind TCP proxies, and the network faults
    brokers: int = 1  # nodes of the Kafka cluster the run uses (3: leader chases)
    script: tuple[ScriptedFault, ...] | None = None  # None: seeded random faults
    kinds: tuple[FaultKind, ...] = field(default_factory=default_kinds)
    defect: str = ""  # a deliberately broken worker (tests.faults.chaos.defects)
    sample_interval_s: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)
    # Consumers with --on-poison park-key, short retry tiers and the marked-events handler;
    # the poison faults; the end-of-run release of parked keys (poison_checks.py).
    poison_policies: bool = False
    mode: str = "partition"  # "queue": share-group workers (queue_mode.py)

    @property
    def outbox_events(self) -> int:
        """Distinct events the outbox-mode simulator submits."""
        return round(self.events * self.outbox_share)

    @property
    def direct_events(self) -> int:
        """Distinct events the direct-mode simulator submits."""
        return self.events - self.outbox_events

    @property
    def load_seconds(self) -> float:
        """How long the simulators take to submit everything."""
        return max(1.0, self.duration_s * self.load_share)
