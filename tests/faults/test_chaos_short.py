"""A short chaos round in the default suite: the whole pipeline (both upstream styles, known
poison, two relays, two or three consumers) under every fault kind of the single-broker harness,
most of them twice: SIGKILLs (random and at crash points), zombies (SIGSTOP and a stall before
the transaction), members added and removed, a rolling restart, broker SIGKILL and clean restart,
PostgreSQL ``stop -m immediate``, terminated backends, outbox commit-order gaps, and oversized and
undecodable records written straight into the topic. Then every invariant of DESIGN §2 holds
with zero violations. ``make chaos`` is the long, random version.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

SCRIPT = (
    ScriptedFault(4, "consumer_sigkill"),
    ScriptedFault(7, "poison_records"),
    ScriptedFault(9, "relay_crash_point", "relay.after_ack"),
    ScriptedFault(13, "postgres_immediate"),
    ScriptedFault(18, "backend_terminated", "consumers"),
    ScriptedFault(20, "zombie", "sigstop"),
    ScriptedFault(32, "outbox_gap"),
    ScriptedFault(35, "consumer_crash_point", "consumer.after_handler"),
    ScriptedFault(38, "member_added"),
    ScriptedFault(41, "broker_sigkill"),
    ScriptedFault(60, "relay_sigkill"),
    ScriptedFault(62, "consumer_crash_point", "consumer.after_dead_letter"),
    ScriptedFault(64, "zombie", "stall_point"),
    ScriptedFault(76, "member_removed"),
    ScriptedFault(78, "rolling_restart"),
    ScriptedFault(87, "broker_restart"),
    ScriptedFault(98, "backend_terminated", "all workers"),
    ScriptedFault(100, "poison_records"),
    ScriptedFault(102, "consumer_sigkill"),
    ScriptedFault(104, "outbox_gap"),
)


def test_short_chaos_round_with_every_fault_kind_violates_no_invariant(
    chaos_services: Services, tmp_path: Path
) -> None:
    seed = round_seed()
    config = ChaosConfig(
        duration_s=110, seed=seed, events=8000, poison_rate=0.005, script=SCRIPT,
        drain_timeout_s=120,
    )  # fmt: skip
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.passed, table
    assert result.violations == 0
    assert result.faults_by_kind() == dict(Counter(fault.kind for fault in SCRIPT)), table
    events = result.events
    assert events["distinct_submitted"] + events["poison_submitted"] == 8000 + 4, table  # + gaps
    assert events["poison_submitted"] > 0, table
    assert events["raw_poison_records"] == 4, table  # two faults, each one undecodable, one huge
    assert events["dead_letters"] >= 4, table  # each poison record once: see the checks
