"""The poison checks of the chaos harness on hand-made evidence: each reports the broken
promise it stands for (the rounds against real services are in poison_rounds.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.chaos.checks import check_partition_order, check_workers_wait_out_outages
from tests.faults.chaos.crash_checks import check_no_innocent_crash_dead_letters
from tests.faults.chaos.evidence import Evidence, InboxRow
from tests.faults.chaos.poison_checks import check_killers, check_poison_key_order, check_retried
from tests.faults.chaos.topic import TopicRecord
from tests.faults.chaos.verdict import Observations
from tests.fixtures.crash_handlers import KILLER_EXIT
from tests.fixtures.witness import WitnessRow

T = "chaos.t.direct"
PRODUCED = datetime(2026, 1, 1, tzinfo=UTC)
RELEASED = PRODUCED + timedelta(seconds=60)
OBS = Observations(1, [], [], [], drained=True, drain_detail="drained")


def _mark(mark: str, offset: int, later: list[str]) -> dict[str, Any]:
    return {"mark": mark, "key": f"{mark}-key", "event_id": f"{mark}-id", "topic": T,
            "partition": 0, "offset": offset, "timestamp_ms": PRODUCED.timestamp() * 1000,
            "later": later}  # fmt: skip


def _letter(offset: int, stage: str) -> TopicRecord:
    headers = {
        "dlq.original.topic": T,
        "dlq.original.partition": "0",
        "dlq.original.offset": str(offset),
        "dlq.consumer.group": "g",
        "dlq.stage": stage,
    }
    return TopicRecord(0, offset, "", None, 1, headers)  # fmt: skip


def _evidence() -> Evidence:
    """A blocker at 0 (later b1, b2), a killer at 3 (later k1), a flaky event at 5 (later f1):
    dead letters and applies as the policies promise."""
    ev = Evidence(topics={"direct": T}, group="g", released_at=RELEASED)
    ev.marks = [_mark("blocker", 0, ["b1", "b2"]), _mark("killer", 3, ["k1"]),
                _mark("flaky", 5, ["f1"])]  # fmt: skip
    keys = ["blocker-key", "blocker-key", "blocker-key", "killer-key", "killer-key",
            "flaky-key", "flaky-key", "other", "other"]  # fmt: skip
    ids = ["blocker-id", "b1", "b2", "killer-id", "k1", "flaky-id", "f1", "o1", "o2"]
    ev.records[T] = [
        TopicRecord(0, n, k, e, 1, {}) for n, (k, e) in enumerate(zip(keys, ids, strict=True))
    ]
    ev.dead_letters = {(T, 0, 0): 1, (T, 0, 3): 1}
    ev.dead_letter_records = {(T, 0, 0): [_letter(0, "handle")], (T, 0, 3): [_letter(3, "crash")]}
    ev.dlq_records = {f"{T}.dlq": [_letter(0, "handle"), _letter(3, "crash")]}
    # Applied: o1 first, then the flaky event and f1 after their delays, then the released.
    order = [("o1", 7, 10), ("o2", 8, 10), ("flaky-id", 5, 11), ("f1", 6, 12), ("b1", 1, 70),
             ("b2", 2, 71), ("k1", 4, 72)]  # fmt: skip
    ev.witness = [WitnessRow(e, T, 0, o, n, 1) for n, (e, o, _) in enumerate(order)]
    ev.inbox = {e: InboxRow(e, T, 0, o, PRODUCED + timedelta(seconds=s)) for e, o, s in order}
    # The flaky event: failed at 1 s, retried at 3.2 s (tier 2 s), failed, applied at 11 s.
    ev.flaky_attempts = {"flaky-id": [(0, at(1)), (1, at(3.2)), (2, at(11))]}
    return ev


def at(second: float) -> datetime:
    return PRODUCED + timedelta(seconds=second)


def test_the_policies_kept_pass_every_poison_check() -> None:
    ev = _evidence()
    for check in (check_poison_key_order, check_killers, check_retried,
                  check_no_innocent_crash_dead_letters, check_partition_order):  # fmt: skip
        result = check(ev, OBS)
        assert result.passed, (result.name, result.examples)


def test_a_later_event_applied_while_its_key_was_parked_is_reported() -> None:
    ev = _evidence()
    ev.inbox["b1"] = InboxRow("b1", T, 0, 1, RELEASED - timedelta(seconds=1))
    result = check_poison_key_order(ev, OBS)
    assert result.violations == 1
    assert "applied while parked" in result.examples[0]


def test_later_events_released_out_of_order_are_reported() -> None:
    ev = _evidence()
    ev.witness = [w if w.event_id != "b1" else WitnessRow("b1", T, 0, 1, 99, 1) for w in ev.witness]
    assert not check_poison_key_order(ev, OBS).passed


def test_a_killer_without_its_crash_dead_letter_is_reported() -> None:
    ev = _evidence()
    ev.dead_letter_records[(T, 0, 3)] = [_letter(3, "handle")]
    assert not check_killers(ev, OBS).passed
    del ev.dead_letters[(T, 0, 3)], ev.dead_letter_records[(T, 0, 3)]
    assert not check_killers(ev, OBS).passed


def test_only_a_killer_may_be_a_crash_dead_letter() -> None:
    ev = _evidence()
    ev.dlq_records[f"{T}.dlq"].append(_letter(6, "crash"))
    result = check_no_innocent_crash_dead_letters(ev, OBS)
    assert result.violations == 1
    assert "(T, 0, 6)".replace("T", repr(T)) in result.examples[0]


def test_a_retried_event_applied_before_its_delays_or_twice_is_reported() -> None:
    ev = _evidence()
    ev.flaky_attempts["flaky-id"][2] = (2, at(4))  # 0.8 s after the failure, tier 4 s
    result = check_retried(ev, OBS)
    assert result.violations == 1
    assert "attempt 2 0.80s after the last failure (tier 4s)" in result.examples[0]
    ev.flaky_attempts["flaky-id"].pop()  # applied without its last retry
    assert not check_retried(ev, OBS).passed
    ev = _evidence()
    ev.witness.append(WitnessRow("flaky-id", T, 0, 5, 50, 1))
    assert not check_retried(ev, OBS).passed


def test_the_key_of_a_retried_event_waits_for_it() -> None:
    ev = _evidence()
    ev.witness = [w if w.event_id != "f1" else WitnessRow("f1", T, 0, 6, 0, 0) for w in ev.witness]
    assert not check_retried(ev, OBS).passed


def test_partition_order_holds_for_keys_nothing_set_aside() -> None:
    ev = _evidence()
    ev.released_at = None  # the default skip policy: nothing waits aside
    assert not check_partition_order(ev, OBS).passed


def test_a_killer_exit_is_not_an_outage() -> None:
    obs = Observations(1, [], [], [], True, "drained",
                       exits=[("consumer-0", "consumer", KILLER_EXIT, "")])  # fmt: skip
    assert check_workers_wait_out_outages(Evidence(topics={}), obs).passed
    obs = Observations(1, [], [], [], True, "drained", exits=[("consumer-0", "consumer", 1, "")])
    assert not check_workers_wait_out_outages(Evidence(topics={}), obs).passed
