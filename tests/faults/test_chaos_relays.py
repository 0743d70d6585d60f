"""A short chaos round with three relays sharing the outbox's shards: a relay SIGKILLed, one
killed at each crash point, one stalled (SIGSTOP) past its lease, a rolling restart, outbox
commit-order gaps. Every row is published, none lost, each key's events applied in submission
order, and no shard ever had two live owners (``each_shard_one_live_relay``). ``make chaos
RELAYS=3`` is the long, random version.
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
    ScriptedFault(3, "relay_stall"),
    ScriptedFault(6, "outbox_gap"),
    ScriptedFault(10, "relay_sigkill"),
    ScriptedFault(13, "relay_crash_point", "relay.after_ack"),
    ScriptedFault(19, "relay_stall"),
    ScriptedFault(21, "outbox_gap"),
    ScriptedFault(26, "relay_crash_point", "relay.after_mark"),
    ScriptedFault(31, "rolling_restart"),
)


def test_three_relays_under_kills_stalls_and_gaps_violate_no_invariant(
    chaos_services: Services, tmp_path: Path
) -> None:
    config = ChaosConfig(
        duration_s=40, seed=round_seed(), events=4000, outbox_share=0.9, relays=3,
        script=SCRIPT, drain_timeout_s=90, poison_rate=0.0, raw_poison=False,
    )  # fmt: skip
    result, table = run_round(config, chaos_services, tmp_path)
    assert result.passed, table
    assert result.faults_by_kind() == dict(Counter(fault.kind for fault in SCRIPT)), table
    shards = next(c for c in result.checks if c.name == "each_shard_one_live_relay")
    assert shards.checked > 16, table  # the shards moved between relays, each claim checked
