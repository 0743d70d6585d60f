"""The chaos harness in queue mode (share groups): a short round with a worker SIGKILL, a
worker stalled past its record locks and a killer record passes every applicable check (the
offset and order checks are not applicable, and the report says so), the killer ends as the
only ``crash`` dead letter. ``make chaos CHAOS_ARGS="--mode queue"`` is the long version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.faults.chaos.queue_mode import NOT_APPLICABLE_CHECKS, queue_config
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

SCRIPT = (
    ScriptedFault(2, "killer_record"),
    ScriptedFault(4, "consumer_sigkill"),
    ScriptedFault(6, "lock_stall"),
)


def test_a_queue_round_with_a_kill_a_stall_past_the_lock_and_a_killer_passes(
    chaos_services: Services, tmp_path: Path
) -> None:
    config = queue_config(
        ChaosConfig(
            duration_s=20, seed=round_seed(), events=1500, duplicate_rate=0.2, poison_rate=0.01,
            script=SCRIPT, drain_timeout_s=150, poison_policies=True,
            # Each death of the killer waits out its lock (15 s): the lowest limit the product
            # allows keeps the round short (3 deaths, then its crash dead letter).
            extra={"queue_delivery_limit": "4"},
        )
    )  # fmt: skip
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.passed, table
    checks = {c.name: c for c in result.checks}
    assert not set(NOT_APPLICABLE_CHECKS) & set(checks), table
    assert checks["each_killer_one_crash_dead_letter"].checked == 1 + 1, table
    assert checks["no_innocent_crash_dead_letters"].passed, table
    assert checks["every_record_applied_or_dead_lettered"].checked > 1500, table
    assert [f.kind for f in result.faults] == [f.kind for f in SCRIPT], table
    assert not [f for f in result.faults if f.error], table
    assert any("not applicable in queue mode" in note for note in result.notes), table


def test_a_worker_that_acknowledges_before_commit_is_caught(
    chaos_services: Services, tmp_path: Path
) -> None:
    """The defect ``queue_ack_before_commit`` (queue_defects.py) under one kill between its
    acknowledgement and its COMMIT: the records are gone from the share group, never applied."""
    config = queue_config(
        ChaosConfig(
            duration_s=15, seed=round_seed(), events=600, poison_rate=0.0, raw_poison=False,
            script=(ScriptedFault(3, "consumer_crash_point", "consumer.before_transaction"),),
            # The lost records never settle: the drain always runs to its end. Long enough
            # for the simulators of a loaded machine to finish submitting.
            defect="queue_ack_before_commit", drain_timeout_s=60,
        )
    )  # fmt: skip
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.events["distinct_submitted"] == 600, table
    failed = set(result.failed_checks())
    assert {"each_event_applied_exactly_once", "every_record_applied_or_dead_lettered"} <= failed, (
        table
    )
    assert "never applied" in " ".join(
        next(c for c in result.checks if c.name == "each_event_applied_exactly_once").examples
    ), table
