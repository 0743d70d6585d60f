"""A short chaos round in the default suite: the whole pipeline (both upstream styles, known
poison, two relays, two or three consumers) under every fault kind of the single-broker harness,
most of them twice: SIGKILLs (random and at crash points), zombies (SIGSTOP and a stall before
the transaction), members added and removed, a rolling restart, broker SIGKILL and clean restart,
PostgreSQL ``stop -m immediate``, terminated backends, outbox commit-order gaps, oversized and
undecodable records written straight into the topic, valid events with hostile header values,
undecodable records and tombstones with hostile headers (non-UTF-8 names included), a record
near the size limit, a second consumer group and a read-only database episode. Then every
invariant of DESIGN §2 holds with zero violations. ``make chaos`` is the long, random version.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.slow,
    # A loaded machine runs the scripted faults late (all of them are injected) and drains
    # slower: about 3 minutes loaded, against the suite's 5-minute default per test.
    pytest.mark.timeout(600),
]

SCRIPT = (
    ScriptedFault(4, "consumer_sigkill"),
    ScriptedFault(7, "poison_records"),
    ScriptedFault(9, "relay_crash_point", "relay.after_ack"),
    ScriptedFault(13, "postgres_immediate"),
    ScriptedFault(16, "second_group"),  # starts the second group's consumer
    ScriptedFault(18, "backend_terminated", "consumers"),
    ScriptedFault(20, "zombie", "sigstop"),
    ScriptedFault(32, "outbox_gap"),
    ScriptedFault(35, "consumer_crash_point", "consumer.after_handler"),
    ScriptedFault(38, "member_added"),
    ScriptedFault(41, "broker_sigkill"),
    ScriptedFault(48, "hostile_events"),
    ScriptedFault(50, "hostile_poison"),
    ScriptedFault(53, "near_limit_record"),
    ScriptedFault(60, "relay_sigkill"),
    ScriptedFault(62, "consumer_crash_point", "consumer.after_dead_letter"),
    ScriptedFault(64, "zombie", "stall_point"),
    ScriptedFault(75, "read_only_database"),
    ScriptedFault(76, "member_removed"),
    ScriptedFault(78, "rolling_restart"),
    ScriptedFault(87, "broker_restart"),
    ScriptedFault(93, "second_group"),  # SIGKILLs and restarts it
    ScriptedFault(98, "backend_terminated", "all workers"),
    ScriptedFault(100, "poison_records"),
    ScriptedFault(102, "consumer_sigkill"),
    ScriptedFault(104, "outbox_gap"),
    ScriptedFault(107, "hostile_events"),
)
# Records each raw-record fault writes straight into the topic (hostile_poison: one more when
# a producer for non-UTF-8 header names is connected to its seam).
RAW_RECORDS = {"poison_records": 2, "hostile_poison": 3, "near_limit_record": 1}


def test_short_chaos_round_with_every_fault_kind_violates_no_invariant(
    chaos_services: Services, tmp_path: Path
) -> None:
    seed = round_seed()
    config = ChaosConfig(
        duration_s=115, seed=seed, events=8000, poison_rate=0.005, script=SCRIPT,
        drain_timeout_s=120,
    )  # fmt: skip
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.passed, table
    assert result.violations == 0
    assert result.faults_by_kind() == dict(Counter(fault.kind for fault in SCRIPT)), table
    events = result.events
    hostile = 3 * sum(1 for fault in SCRIPT if fault.kind == "hostile_events")
    submitted = events["distinct_submitted"] + events["poison_submitted"]
    assert submitted == 8000 + 4 + hostile, table  # + gaps + valid events with hostile headers
    assert events["poison_submitted"] > 0, table
    raw = sum(RAW_RECORDS.get(fault.kind, 0) for fault in SCRIPT)
    assert events["raw_poison_records"] >= raw, table  # each dead-lettered once: see the checks
    assert events["dead_letters"] >= raw, table
