"""A stored offset is compared with the partition's watermarks."""

from __future__ import annotations

from consumers.bounds import out_of_range


def test_an_offset_inside_the_log_or_at_its_end_is_fine() -> None:
    assert out_of_range(("t", 0), 40, (40, 60)) is None
    assert out_of_range(("t", 0), 60, (40, 60)) is None


def test_no_stored_offset_or_unknown_watermarks_is_not_a_problem() -> None:
    assert out_of_range(("t", 0), None, (40, 60)) is None
    assert out_of_range(("t", 0), 5, None) is None
    assert out_of_range(("t", 0), 5, (-1001, -1001)) is None


def test_an_offset_beyond_the_log_end_is_out_of_range() -> None:
    found = out_of_range(("t", 2), 500, (0, 20))
    assert found is not None
    assert found.where == ("t", 2)
    assert "beyond the log end 20" in found.reason


def test_an_offset_below_the_log_start_says_how_many_records_were_lost() -> None:
    found = out_of_range(("t", 0), 30, (40, 60))
    assert found is not None
    assert "below the log start 40" in found.reason
    assert "removed 10 unread" in found.reason
