from __future__ import annotations

from dataclasses import dataclass

from consumers.assignment import Assignment
from consumers.offsets import OffsetMove


@dataclass
class Record:
    _topic: str
    _partition: int
    _offset: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def coords(records: list[Record]) -> list[tuple[str, int, int]]:
    return [(r.topic(), r.partition(), r.offset()) for r in records]


def test_records_of_partitions_not_owned_are_dropped() -> None:
    assignment = Assignment()
    assignment.own({("t", 0): 0})
    kept = assignment.admit([Record("t", 0, 0), Record("t", 1, 0)])
    assert coords(kept) == [("t", 0, 0)]


def test_records_below_the_position_are_dropped_but_gaps_above_are_fine() -> None:
    assignment = Assignment()
    assignment.own({("t", 0): 10})
    kept = assignment.admit([Record("t", 0, 8), Record("t", 0, 9), Record("t", 0, 12)])
    assert coords(kept) == [("t", 0, 12)]


def test_a_partition_without_a_stored_offset_accepts_its_first_record() -> None:
    assignment = Assignment()
    assignment.own({("t", 0): None})
    assert coords(assignment.admit([Record("t", 0, 7)])) == [("t", 0, 7)]


def test_records_come_back_grouped_by_partition_in_offset_order() -> None:
    assignment = Assignment()
    assignment.own({("t", 0): 0, ("t", 1): 0})
    records = [Record("t", 1, 0), Record("t", 0, 0), Record("t", 1, 1), Record("t", 0, 1)]
    assert coords(assignment.admit(records)) == [
        ("t", 0, 0),
        ("t", 0, 1),
        ("t", 1, 0),
        ("t", 1, 1),
    ]


def test_a_released_partition_drops_its_records_and_advance_ignores_it() -> None:
    assignment = Assignment()
    assignment.own({("t", 0): 0, ("t", 1): 0})
    assert assignment.release([("t", 1), ("t", 9)]) == [("t", 1)]
    assignment.advance([OffsetMove("t", 1, 0, 5), OffsetMove("t", 0, 0, 3)])
    assert assignment.positions == {("t", 0): 3}
    assert coords(assignment.admit([Record("t", 1, 5)])) == []
