"""Held partitions: paused at the held record, resumed when due, forgotten when no longer owned."""

from __future__ import annotations

from typing import Any, cast

from consumers.assignment import Assignment
from consumers.events import Coordinates
from consumers.holds import Holds
from oncepipe.kafka import KafkaConsumer
from oncepipe.logging import get_logger

WHERE: Coordinates = ("clicks", 0)


class _Client:
    """Records what a KafkaConsumer was asked to do (no broker needed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def pause(self, partitions: Any) -> None:
        self.calls.append(("pause", list(partitions)))

    def resume(self, partitions: Any) -> None:
        self.calls.append(("resume", list(partitions)))


def _holds(*, retry_s: float, owned: bool = True) -> tuple[Holds, _Client, Assignment]:
    client, assignment = _Client(), Assignment()
    if owned:
        assignment.own({WHERE: 10})

    def seek(where: Coordinates, offset: int | None) -> None:
        client.calls.append(("seek", (where, offset)))

    holds = Holds(
        consumer=lambda: cast("KafkaConsumer", client),
        assignment=assignment,
        seek=seek,
        retry_initial_s=retry_s,
        retry_max_s=retry_s,
        log=get_logger("test"),
    )
    return holds, client, assignment


def test_a_held_partition_is_sought_back_to_its_record_then_paused() -> None:
    holds, client, _ = _holds(retry_s=3600)
    holds.hold({WHERE: 12})
    # Seek first: a seek that falls back to re-assigning would undo the pause.
    assert client.calls == [("seek", (WHERE, 12)), ("pause", [WHERE])]
    assert WHERE in holds
    holds.resume_due()
    assert WHERE in holds  # not due for an hour


def test_a_due_hold_resumes_its_partition() -> None:
    holds, client, _ = _holds(retry_s=0.0)
    holds.hold({WHERE: 12})
    holds.resume_due()
    assert client.calls[-1] == ("resume", [WHERE])
    assert WHERE not in holds


def test_a_partition_not_owned_is_neither_held_nor_resumed() -> None:
    holds, client, _ = _holds(retry_s=0.0, owned=False)
    holds.hold({WHERE: 12})
    assert client.calls == []
    assert WHERE not in holds


def test_a_due_hold_of_a_partition_revoked_meanwhile_is_dropped_without_resuming() -> None:
    holds, client, assignment = _holds(retry_s=0.0)
    holds.hold({WHERE: 12})
    assignment.release([WHERE])
    holds.resume_due()
    assert ("resume", [WHERE]) not in client.calls
    assert WHERE not in holds


def test_forget_and_lift_end_the_hold() -> None:
    holds, _, _ = _holds(retry_s=3600)
    holds.hold({WHERE: 12})
    holds.lift(WHERE)
    assert WHERE not in holds
    holds.hold({WHERE: 12})
    holds.forget([WHERE])
    assert WHERE not in holds
