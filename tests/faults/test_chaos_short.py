"""A short chaos round in the default suite: the whole pipeline (both upstream styles, two
relays, two consumers) under a consumer SIGKILL, a relay SIGKILL at ``relay.after_ack``, a
PostgreSQL ``stop -m immediate``, a zombie (SIGSTOP past ``session.timeout.ms``), a crash at
``consumer.after_handler`` and an outbox commit-order gap; then every invariant of DESIGN §2
(no loss, no double effect, offsets never ahead of effects nor backwards, fencing, order, clean
SIGTERM stops) holds with zero violations. ``make chaos`` is the long, random version.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.faults.chaos.report import render
from tests.faults.chaos.run import run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

SCRIPT = (
    ScriptedFault(4, "consumer_sigkill"),
    ScriptedFault(8, "relay_crash_point", "relay.after_ack"),
    ScriptedFault(13, "postgres_immediate"),
    ScriptedFault(20, "zombie", "sigstop"),
    ScriptedFault(32, "outbox_gap"),
    ScriptedFault(34, "consumer_crash_point", "consumer.after_handler"),
)


def test_short_chaos_round_with_kills_a_postgres_crash_and_a_zombie_violates_no_invariant(
    chaos_services: Services, tmp_path: Path
) -> None:
    seed = int(os.environ.get("ONCEPIPE_TEST_SEED", time.time_ns() % 100_000))
    print(f"chaos seed {seed} (rerun with ONCEPIPE_TEST_SEED={seed})")
    config = ChaosConfig(duration_s=42, seed=seed, events=5000, script=SCRIPT, drain_timeout_s=90)
    result = run_chaos(config, chaos_services, tmp_path)
    table = render(result)
    print(table)
    assert result.passed, table
    assert result.violations == 0
    assert result.faults_by_kind() == {
        "consumer_sigkill": 1,
        "relay_crash_point": 1,
        "postgres_immediate": 1,
        "zombie": 1,
        "outbox_gap": 1,
        "consumer_crash_point": 1,
    }, table
    assert result.events["distinct_submitted"] == 5000 + 2  # the simulators' and the gap's
