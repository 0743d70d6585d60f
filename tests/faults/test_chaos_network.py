"""A short chaos round with the workers behind the harness's TCP proxies: the consumers'
path to PostgreSQL cut, slowed and losing COMMIT replies (committed, reported as failed), the
workers' path to Kafka cut and slowed; every invariant of DESIGN §2 holds with zero violations.
``make chaos NETWORK=1`` is the long, random version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

SCRIPT = (
    ScriptedFault(4, "commit_reply_lost"),
    ScriptedFault(8, "pg_path_cut"),
    ScriptedFault(16, "broker_path_cut"),
    ScriptedFault(25, "pg_path_slow"),
    ScriptedFault(38, "commit_reply_lost"),
    ScriptedFault(44, "broker_path_slow"),
)


def test_short_network_round_cuts_slows_and_loses_commit_replies_without_a_violation(
    chaos_services: Services, tmp_path: Path
) -> None:
    seed = round_seed()
    config = ChaosConfig(
        duration_s=60, seed=seed, events=6000, script=SCRIPT, network=True, drain_timeout_s=90
    )
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.passed, table
    assert result.faults_by_kind() == {
        "commit_reply_lost": 2,
        "pg_path_cut": 1,
        "broker_path_cut": 1,
        "pg_path_slow": 1,
        "broker_path_slow": 1,
    }, table
    assert result.events["lost_commit_replies"] >= 2, table  # committed, reported as failed
    events = result.events
    assert events["distinct_submitted"] + events["poison_submitted"] == 6000, table
