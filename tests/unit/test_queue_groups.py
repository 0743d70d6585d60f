"""How queue mode groups a poll's redelivered records: few transactions, killers alone.

A model of one worker without services: every poll hands out every record not acknowledged
yet (a whole producer batch, as the broker does), one delivery more each; a transaction holding
the killer kills the worker, charging everything not acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import pytest

from consumers.decoding import Rejected
from consumers.failures import FailureLog, History
from consumers.queue_runtime import _redelivered_groups, queue_retry_policy
from consumers.queue_settings import GroupLimits
from consumers.settings import ConsumerSettings
from oncepipe.hooks import NO_HOOKS
from oncepipe.kafka import Record
from schemas.errors import UnknownFingerprintError


@dataclass(frozen=True)
class FakeRecord:
    at: int

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at


def groups_of(again: Sequence[tuple[FakeRecord, int]], limit: int) -> list[list[int]]:
    """The offsets of each transaction ``_redelivered_groups`` makes of ``again``."""
    pairs = cast("Sequence[tuple[Record, int]]", again)
    return [[r.offset() for r in group] for group in _redelivered_groups(pairs, limit)]


def crash_letters(records: int, killer: int, limit: int, batch: int = 50) -> set[int]:
    """The offsets dead-lettered ``crash`` (at their last delivery) until every record settled."""
    counts = dict.fromkeys(range(records), 0)
    letters: set[int] = set()
    while counts:
        for at in counts:
            counts[at] += 1
        for at in [a for a, c in counts.items() if c >= limit]:
            letters.add(at)
            del counts[at]
        fresh = sorted(a for a, c in counts.items() if c == 1)
        again = [(FakeRecord(a), c) for a, c in counts.items() if c > 1]
        groups = [fresh[n : n + batch] for n in range(0, len(fresh), batch)]
        groups += groups_of(again, limit)
        for group in groups:
            if killer in group:
                break  # the worker dies: the rest of the poll is charged again
            for at in group:
                del counts[at]
    return letters


@pytest.mark.parametrize("limit", [4, 5, 6, 8, 10])
@pytest.mark.parametrize("killer", [0, 1, 37, 499, 998, 999])
def test_a_killer_is_the_only_crash_dead_letter_whatever_its_place(limit: int, killer: int) -> None:
    assert crash_letters(1000, killer, limit) == {killer}


def test_a_poll_of_1000_redelivered_records_takes_32_transactions_far_from_the_limit() -> None:
    again = [(FakeRecord(n), 2) for n in range(1000)]
    groups = groups_of(again, 6)
    assert len(groups) == 32
    assert sorted(at for group in groups for at in group) == list(range(1000))
    # Ascending on an even count: the records before a killer are acknowledged before it runs.
    assert groups[0] == list(range(32))
    # The last two deliveries before the limit: one record per transaction.
    assert {len(g) for g in groups_of([(r, 4) for r, _ in again], 6)} == {1}


class OneFailureLog:
    """Every record failed once so far: now (a FailureLog without PostgreSQL)."""

    def record(self, record: object) -> History:
        now = datetime.now(UTC)
        return History(1, now, now)

    def history(self, records: object) -> dict[object, History]:
        return {}


def rejected(error: BaseException) -> Rejected:
    return Rejected("t", 0, 7, None, b"x", [], None, "decode", error)


@pytest.mark.parametrize("limit", [4, 6])
def test_a_record_queue_mode_would_hold_is_dead_lettered_before_the_limit(limit: int) -> None:
    """A hold releases the record and the group hands it out again at once, one delivery more:
    an unknown schema held for its grace burnt the deliveries in a second and ended as an
    innocent ``crash`` dead letter."""
    config = ConsumerSettings(group="g", topics=("t",), max_attempts=10)
    limits = GroupLimits(15.0, limit, 7.5)
    failures = cast("FailureLog", OneFailureLog())
    policy = queue_retry_policy(failures, config, limits, NO_HOOKS)
    verdicts = policy.decide([rejected(UnknownFingerprintError("fingerprint ab12 unknown"))])
    assert [c.rejected.offset for c in verdicts.to_dead_letter] == [7]
    assert not verdicts.held
    assert policy._max_attempts == limit - 1  # an unexpected failure: a delivery to spare
