"""An unknown writer schema is waited for once, not once per record that uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.decoding import Rejected
from consumers.failures import FailureLog, History
from consumers.retry_policy import RetryPolicy
from schemas import UnknownFingerprintError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE_S = 300.0


class ScriptedLog(FailureLog):
    """A failure log whose clock the test sets; each record's history starts at its first call."""

    def __init__(self) -> None:
        super().__init__(lambda: None, "g")  # type: ignore[arg-type,return-value]
        self.now = T0
        self.first: dict[int, datetime] = {}
        self.counts: dict[int, int] = {}

    def record(self, rejected: Rejected) -> History:
        self.first.setdefault(rejected.offset, self.now)
        self.counts[rejected.offset] = self.counts.get(rejected.offset, 0) + 1
        return History(self.counts[rejected.offset], self.first[rejected.offset], self.now)


def _unknown(offset: int, fingerprint: str = "ab" * 8, partition: int = 0) -> Rejected:
    error = UnknownFingerprintError("unknown writer schema", fingerprint=fingerprint)
    return Rejected("t", partition, offset, None, b"\xc3\x01", (), None, "decode", error)


def test_the_records_after_one_that_waited_out_the_grace_are_dead_lettered_at_once() -> None:
    log = ScriptedLog()
    policy = RetryPolicy(log, max_attempts=3, unknown_schema_grace_s=GRACE_S)
    assert policy.decide([_unknown(10), _unknown(11)]).held == {("t", 0): 10}
    log.now = T0 + timedelta(seconds=GRACE_S)
    verdict = policy.decide([_unknown(10), _unknown(11), _unknown(12)])
    assert [c.rejected.offset for c in verdict.to_dead_letter] == [10, 11, 12]
    assert verdict.held == {}


def test_another_partition_waits_only_what_is_left_of_the_schema_grace() -> None:
    log = ScriptedLog()
    policy = RetryPolicy(log, max_attempts=3, unknown_schema_grace_s=GRACE_S)
    policy.decide([_unknown(10)])
    log.now = T0 + timedelta(seconds=GRACE_S - 1)
    assert policy.decide([_unknown(5, partition=1)]).held == {("t", 1): 5}
    log.now = T0 + timedelta(seconds=GRACE_S)
    verdict = policy.decide([_unknown(5, partition=1)])
    assert [c.rejected.offset for c in verdict.to_dead_letter] == [5]


def test_a_different_unknown_schema_gets_its_own_grace_period() -> None:
    log = ScriptedLog()
    policy = RetryPolicy(log, max_attempts=3, unknown_schema_grace_s=GRACE_S)
    policy.decide([_unknown(10)])
    log.now = T0 + timedelta(seconds=GRACE_S)
    verdict = policy.decide([_unknown(10), _unknown(11, fingerprint="cd" * 8)])
    assert [c.rejected.offset for c in verdict.to_dead_letter] == [10]
    assert verdict.held == {("t", 0): 11}
