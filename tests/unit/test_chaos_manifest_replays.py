"""The chaos checks read a manifest a restarted simulator appended to (the same submission
twice), and the report names the checks an undrained run fails by consequence."""

from __future__ import annotations

from typing import Any

from tests.faults.chaos.checks import check_key_order
from tests.faults.chaos.evidence import Evidence
from tests.faults.chaos.verdict import CheckResult, Observations, drain_consequences
from tests.fixtures.witness import WitnessRow

TOPIC = "chaos.t.direct"


def _line(seq: int, event_id: str, key: str) -> dict[str, Any]:
    return {"seq": seq, "kind": "event", "event_id": event_id, "key": key, "item_id": "i"}


def _observations() -> Observations:
    return Observations(0, [], [], [], drained=True, drain_detail="drained")


def test_key_order_tolerates_a_replayed_submission() -> None:
    ids = [f"00000000-0000-0000-0000-00000000000{n}" for n in range(3)]
    first_life = [_line(n, ids[n], "u1") for n in range(2)]
    second_life = [_line(n, ids[n], "u1") for n in range(3)]  # replays 0 and 1, then 2
    ev = Evidence(topics={"direct": TOPIC}, manifests={TOPIC: first_life + second_life})
    ev.witness = [WitnessRow(ids[n], TOPIC, 0, n, n + 1, 1) for n in range(3)]
    result = check_key_order(ev, _observations())
    assert result.passed, result.examples


def test_undrained_report_names_the_dependent_failures() -> None:
    consumed = CheckResult("every_record_consumed", "1", checked=1, violations=1)
    counted = CheckResult("counters_equal_manifests (group g-b)", "1,2", checked=1, violations=1)
    order = CheckResult("applied_in_partition_order", "5", checked=1, violations=1)
    fine = CheckResult("each_event_applied_exactly_once", "1,2", checked=1)
    line = drain_consequences(
        [consumed, counted, order, fine], False, "simulators still submitting"
    )
    assert line is not None
    assert "every_record_consumed" in line
    assert "counters_equal_manifests (group g-b)" in line
    assert "applied_in_partition_order" not in line
    assert "each_event_applied" not in line
    assert drain_consequences([consumed], True, "drained") is None
