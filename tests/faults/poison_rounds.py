"""The poison policies under chaos: a short round with a poisoned key, a killer record and a
flaky dependency (the group in ``park-key`` mode) passes every check, and each new poison
check reports the broken promise of a defect round (a consumer setting that breaks it; the
product code untouched).

About two minutes a round, so not in ``make test``: ``make chaos-poison`` runs them (pytest
collects a file named on its command line whatever its name).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

POISON_SCRIPT = (
    ScriptedFault(2, "poison_key"),
    ScriptedFault(3, "flaky_dependency"),
    ScriptedFault(4, "killer_record"),
    ScriptedFault(5, "poison_key"),
    ScriptedFault(6, "flaky_dependency"),
    ScriptedFault(7, "consumer_sigkill"),
    ScriptedFault(8, "flaky_dependency"),
)
POISON_CHECKS = (
    "poison_key_order_across_release",
    "each_killer_one_crash_dead_letter",
    "each_retried_event_applied_once_after_its_delays",
)


def _config(seed: int, defect: str = "", drain_timeout_s: float = 180.0) -> ChaosConfig:
    return ChaosConfig(
        duration_s=14.0,
        # A caught killer's neighbours are applied one record per batch, up to the furthest
        # end attempted: small batches keep that (and the drain) short.
        batch_size=50,
        seed=seed,
        events=2000,
        duplicate_rate=0.2,
        poison_rate=0.02,
        script=POISON_SCRIPT,
        defect=defect,
        drain_timeout_s=drain_timeout_s,
        poison_policies=True,
    )


def test_a_poison_round_passes_every_check(chaos_services: Services, tmp_path: Path) -> None:
    result, table = run_round(_config(round_seed()), chaos_services, tmp_path)
    assert result.passed, table
    checked = {c.name: c.checked for c in result.checks}
    # Each poison check looked at its marked records (2 blockers, 1 killer, 3 flaky) and more.
    assert checked["poison_key_order_across_release"] == 1 + 2, table
    assert checked["each_killer_one_crash_dead_letter"] == 1 + 1, table
    assert checked["each_retried_event_applied_once_after_its_delays"] == 1 + 3, table


@dataclass(frozen=True)
class PoisonDefect:
    must_fail: frozenset[str]
    drain_timeout_s: float = 180.0
    # False: the defect stops the drain, so the other poison checks may fail as a consequence
    # (the run's notes say so).
    alone: bool = True


DEFECTS = {
    # --on-poison skip: the later events of a poisoned key are applied while it is "parked",
    # and those of a key whose event waits for a retry before it.
    "poison_skips": PoisonDefect(
        frozenset(
            {"poison_key_order_across_release", "each_retried_event_applied_once_after_its_delays"}
        )
    ),
    # No crash-loop detection: the killer kills its worker again and again, never dead-lettered.
    "no_crash_detection": PoisonDefect(
        frozenset({"each_killer_one_crash_dead_letter"}), 30.0, alone=False
    ),
    # Retry tiers of 0 s: the flaky events are applied before their delays.
    "retry_at_once": PoisonDefect(frozenset({"each_retried_event_applied_once_after_its_delays"})),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_a_poison_check_reports_its_defect(
    defect: str, chaos_services: Services, tmp_path: Path
) -> None:
    expected = DEFECTS[defect]
    config = _config(round_seed(), defect, expected.drain_timeout_s)
    result, table = run_round(config, chaos_services, tmp_path)
    failed = {name.split(" (group ")[0] for name in result.failed_checks()}
    missed = expected.must_fail - failed
    assert not missed, f"defect {defect}: {sorted(missed)} passed\n{table}"
    others = (failed & set(POISON_CHECKS)) - expected.must_fail
    assert not (others and expected.alone), f"defect {defect}: {sorted(others)} failed too\n{table}"
