"""The group protocol's callbacks: assign at the stored offsets, release what is revoked or lost.

No broker: a stand-in client records what the callbacks ask of it (the real group protocol is
exercised in tests/faults/test_consumer_rebalance.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest

from consumers.assignment import Assignment
from consumers.bounds import LogBounds
from consumers.events import Coordinates
from consumers.holds import Holds
from consumers.rebalance import Rebalance
from consumers.settings import ConsumerSettings
from oncepipe.kafka import OFFSET_BEGINNING, KafkaConsumer, TopicPartition
from oncepipe.logging import get_logger

T0: Coordinates = ("clicks", 0)
T1: Coordinates = ("clicks", 1)


class _Client:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def _record(self, what: str, partitions: list[TopicPartition]) -> None:
        self.calls.append((what, [(tp.topic, tp.partition, tp.offset) for tp in partitions]))

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._record("assign", partitions)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self._record("unassign", partitions)

    def pause(self, partitions: Any) -> None:
        pass

    def watermarks(self, topic: str, partition: int, **_: Any) -> tuple[int, int]:
        return (0, 100)


def _start(position: int | None, _where: tuple[str, int]) -> int:
    return OFFSET_BEGINNING if position is None else position


def _rebalance(
    stored: Mapping[Coordinates, int | None] | Exception,
) -> tuple[Rebalance, _Client, Assignment, Holds]:
    client, assignment = _Client(), Assignment()
    config = ConsumerSettings(group="g", retry_initial_s=3600, retry_max_s=3600)
    log = get_logger("test")

    def consumer() -> KafkaConsumer:
        return cast("KafkaConsumer", client)

    def load(wanted: Sequence[Coordinates]) -> Mapping[Coordinates, int | None] | None:
        if isinstance(stored, Exception):
            raise stored
        return {where: stored.get(where) for where in wanted}

    def seek(where: Coordinates, offset: int | None) -> None:
        pass

    holds = Holds(consumer=consumer, assignment=assignment, seek=seek, retry_initial_s=3600,
                  retry_max_s=3600, log=log)  # fmt: skip
    bounds = LogBounds(config, "g", log, consumer=consumer, assignment=assignment,
                       connection=lambda: cast("Any", None), load_positions=load, seek=seek,
                       forget_hold=holds.lift)  # fmt: skip
    rebalance = Rebalance(consumer=consumer, assignment=assignment, holds=holds, bounds=bounds,
                          claim_positions=load, start_offset=_start, log=log)  # fmt: skip
    return rebalance, client, assignment, holds


def test_assigned_partitions_start_at_their_stored_offsets_and_are_owned() -> None:
    rebalance, client, assignment, _ = _rebalance({T0: 42})
    rebalance.on_assign([TopicPartition(*T0), TopicPartition(*T1)])
    assert client.calls == [("assign", [(*T0, 42), (*T1, OFFSET_BEGINNING)])]
    assert assignment.positions == {T0: 42, T1: None}
    rebalance.raise_error()  # nothing kept


def test_a_failed_offset_load_assigns_without_owning_and_is_raised_once_after() -> None:
    rebalance, client, assignment, _ = _rebalance(RuntimeError("database gone"))
    rebalance.on_assign([TopicPartition(*T0)])
    assert client.calls == [("assign", [(*T0, OFFSET_BEGINNING)])]
    assert T0 not in assignment
    with pytest.raises(RuntimeError, match="database gone"):
        rebalance.raise_error()
    rebalance.raise_error()  # raised once only


@pytest.mark.parametrize("callback", ["on_revoke", "on_lost"])
def test_revoked_or_lost_partitions_are_released_unassigned_and_their_holds_forgotten(
    callback: str,
) -> None:
    rebalance, client, assignment, holds = _rebalance({T0: 5, T1: 7})
    rebalance.on_assign([TopicPartition(*T0), TopicPartition(*T1)])
    holds.hold({T0: 5})
    getattr(rebalance, callback)([TopicPartition(*T0)])
    assert T0 not in assignment
    assert T1 in assignment
    assert T0 not in holds
    assert client.calls[-1] == ("unassign", [(*T0, TopicPartition(*T0).offset)])
