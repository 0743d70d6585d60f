"""The checks have teeth: a short chaos round with one deliberately broken worker each, and
the invariant check that must report it. The workers run the real CLI behind the shim in
``tests/faults/chaos/defects.py``; the consumer and relay code are untouched.

Every round runs in the default suite (about 30 s each). Applies are counted and ordered on the
witness (tests/fixtures/witness.py), which the defect handlers write too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.chaos.config import ChaosConfig, ScriptedFault
from tests.faults.chaos.pipeline import Services
from tests.fixtures.chaos import round_seed, run_round

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

AFTER_HANDLER = "consumer.after_handler"
AFTER_DEAD_LETTER = "consumer.after_dead_letter"


@dataclass(frozen=True)
class DefectRound:
    """A defect, the faults that expose it, and the checks that must fail."""

    script: tuple[ScriptedFault, ...]
    must_fail: frozenset[str]
    drain_timeout_s: float = 40.0
    poison_rate: float = 0.002
    duration_s: float = 18.0


ROUNDS = {
    # Offsets committed before the effects: a crash between the two loses the batch.
    "offset_before_commit": DefectRound(
        (
            ScriptedFault(4, "consumer_crash_point", AFTER_HANDLER),
            ScriptedFault(9, "consumer_crash_point", AFTER_HANDLER),
        ),
        frozenset({"records_below_stored_offset_applied", "each_event_applied_exactly_once"}),
    ),
    # No inbox: redeliveries and direct duplicates are applied and counted again (the witness
    # sees the second applies that click_events' primary key absorbs).
    "skip_inbox": DefectRound(
        (ScriptedFault(5, "consumer_sigkill"),),
        frozenset(
            {
                "no_effect_without_inbox_row",
                "counters_equal_click_events",
                "each_event_applied_exactly_once",
            }
        ),
    ),
    # Each batch applied last to first: offsets, inbox rows and applied_at look right; only
    # the apply order the witness records shows it.
    "reversed_batch": DefectRound(
        (),
        frozenset({"applied_in_partition_order", "per_key_order_is_submission_order"}),
        duration_s=12.0,
    ),
    # Dead letters deduplicated on their source coordinates alone: two groups dead-letter the
    # same poison, whichever commits second loses its dead letter (either group's check).
    "dead_letter_id_without_group": DefectRound(
        (ScriptedFault(2, "second_group"),),
        frozenset({"each_event_applied_exactly_once"}),
        poison_rate=0.03,
        duration_s=12.0,
    ),
    # No compare-and-set: a zombie's late batch moves the offset backwards.
    "no_cas": DefectRound(
        (ScriptedFault(4, "zombie", "stall_point"),),
        frozenset({"stored_offsets_never_backwards"}),
    ),
    # A handler bug: some events counted twice.
    "double_count": DefectRound(
        (), frozenset({"counters_equal_click_events", "counters_equal_manifests"})
    ),
    # "id > last seen": a row committed after a higher id is never published.
    "relay_high_water": DefectRound(
        (ScriptedFault(4, "outbox_gap"), ScriptedFault(8, "outbox_gap")),
        frozenset({"outbox_rows_all_published", "each_event_applied_exactly_once"}),
        drain_timeout_s=15.0,
    ),
    # A relay claims shards under another relay's live lease: two relays publish one shard.
    "relay_shared_shards": DefectRound(
        (), frozenset({"each_shard_one_live_relay"}), duration_s=12.0
    ),
    # Dead letters published before the batch commits: a crash in between rolls the batch
    # back, the records come again and are dead-lettered a second time.
    "dead_letter_outside_txn": DefectRound(
        (
            ScriptedFault(4, "consumer_crash_point", AFTER_DEAD_LETTER),
            ScriptedFault(9, "consumer_crash_point", AFTER_DEAD_LETTER),
        ),
        frozenset({"each_event_applied_exactly_once"}),
        poison_rate=0.03,
    ),
}


@pytest.mark.parametrize("defect", sorted(ROUNDS))
def test_the_checks_report_an_injected_defect(
    defect: str, chaos_services: Services, tmp_path: Path
) -> None:
    round_ = ROUNDS[defect]
    seed = round_seed()
    config = ChaosConfig(
        duration_s=round_.duration_s,
        seed=seed,
        events=3000,
        duplicate_rate=0.2,
        poison_rate=round_.poison_rate,
        script=round_.script,
        defect=defect,
        drain_timeout_s=round_.drain_timeout_s,
    )
    print(f"defect {defect}")
    result, table = run_round(config, chaos_services, tmp_path)
    assert not result.passed, f"defect {defect} went unnoticed\n{table}"
    # A second group's checks are named "<check> (group <name>)": either group may show it.
    failed = {name.split(" (group ")[0] for name in result.failed_checks()}
    missed = round_.must_fail - failed
    assert not missed, f"defect {defect}: {sorted(missed)} passed\n{table}"
