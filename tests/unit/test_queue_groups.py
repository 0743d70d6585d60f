"""How queue mode groups a poll's redelivered records: few transactions, killers alone.

A model of one worker without services: every poll hands out every record not acknowledged
yet (a whole producer batch, as the broker does), one delivery more each; a transaction holding
the killer kills the worker, charging everything not acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consumers.queue_runtime import _redelivered_groups


@dataclass(frozen=True)
class FakeRecord:
    at: int

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.at


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
        groups += [[r.offset() for r in g] for g in _redelivered_groups(again, limit)]  # type: ignore[arg-type]
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
    groups = _redelivered_groups(again, 6)  # type: ignore[arg-type]
    assert len(groups) == 32
    assert sorted(r.offset() for g in groups for r in g) == list(range(1000))
    # Ascending on an even count: the records before a killer are acknowledged before it runs.
    assert [r.offset() for r in groups[0]] == list(range(32))
    # The last two deliveries before the limit: one record per transaction.
    assert {len(g) for g in _redelivered_groups([(r, 4) for r, _ in again], 6)} == {1}  # type: ignore[arg-type]
