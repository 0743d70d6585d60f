"""Crash-loop counting by overlapping ranges (``consumers.attempts.next_range``).

Each scenario replays a partition's attempts (start, end, died?) through the counting: the
number of deaths before the range is narrowed, then before the lone killer reaches the limit,
is the same whatever shape the batches have.
"""

from __future__ import annotations

from consumers.attempts import Range, next_range

N = 3
KILLER = 25


def _deaths_until_caught(batches: list[tuple[int, int]]) -> int:
    """Run ``batches`` (start, end) shapes in turn, one worker life each, until the killer is
    dead-lettered; a batch holding the killer dies, one not holding it commits."""
    row: Range | None = None
    position = 0
    deaths = 0
    shapes = iter(batches)
    while True:
        start, size = position, next(shapes, (0, 1))[1]
        row = next_range(row, start, start + size, 1, N)
        if row.narrow_until is not None:  # one record alone
            size = 1
            if start == KILLER and row.attempts > N:
                return deaths
        if start <= KILLER < start + size:
            deaths += 1
            continue
        position = start + size


def test_a_killer_deep_in_a_partition_is_caught_after_2n_deaths_whatever_the_batches() -> None:
    for shapes in (
        [(0, 50)] * 10,  # every batch from the same start
        [(0, 50), (0, 5), (0, 5), (0, 5), (0, 5), (0, 5), (0, 7), (0, 50)],
        [(0, 30)] + [(0, 1)] * 200,  # then one record per batch
        [(0, 2), (0, 40), (0, 3), (0, 60), (0, 4), (0, 9)] * 30,
    ):
        assert _deaths_until_caught(shapes) == 2 * N, shapes


def test_the_same_start_counts_and_narrows_past_the_limit() -> None:
    row = None
    for attempt in range(1, N + 1):
        row = next_range(row, 10, 20, 1, N)
        assert (row.attempts, row.narrow_until) == (attempt, None)
    row = next_range(row, 10, 15, 1, N)
    assert (row.attempts, row.narrow_until) == (1, 20)


def test_an_attempt_past_the_range_or_before_it_starts_a_new_range() -> None:
    died = next_range(None, 10, 20, 1, N)
    assert next_range(died, 20, 30, 1, N) == Range(20, 30, 30, 1)
    assert next_range(died, 5, 12, 1, N) == Range(5, 12, 12, 1)


def test_an_overlapping_attempt_leaves_out_the_latest_one_when_it_committed() -> None:
    died = next_range(None, 10, 20, 1, N)  # died holding 10..19
    committed = next_range(died, 10, 13, 1, N)  # 10..12 applied and committed
    assert next_range(committed, 13, 18, 1, N) == Range(13, 20, 18, 2)
    # The latest attempt 10..19 did not commit when the next starts inside it (a hold).
    assert next_range(died, 13, 18, 1, N).attempts == 2


def test_a_survived_attempt_counts_nothing() -> None:
    row = next_range(None, 10, 20, 1, N)
    assert next_range(row, 10, 20, 0, N).attempts == 1
    assert next_range(row, 12, 20, 0, N).attempts == 1
