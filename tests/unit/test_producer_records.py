"""OutgoingRecord and Delivery, built by their own fast __init__, behave as frozen dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from producers.producer import Delivery, OutgoingRecord


def test_an_outgoing_record_takes_its_fields_in_order_and_by_name_with_defaults() -> None:
    record = OutgoingRecord(7, "clicks", b"k", b"v")
    assert (record.ref, record.topic, record.key, record.value) == (7, "clicks", b"k", b"v")
    assert (record.headers, record.partition) == ((), -1)
    named = OutgoingRecord(
        ref=7, topic="clicks", key=b"k", value=b"v", headers=[("a", "b")], partition=3
    )
    assert named == OutgoingRecord(7, "clicks", b"k", b"v", [("a", "b")], 3)
    assert named != record
    assert repr(record) == (
        "OutgoingRecord(ref=7, topic='clicks', key=b'k', value=b'v', headers=(), partition=-1)"
    )


def test_an_outgoing_record_is_frozen_hashable_and_works_with_dataclass_helpers() -> None:
    record = OutgoingRecord(1, "t", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.ref = 2  # type: ignore[misc]
    assert hash(record) == hash(OutgoingRecord(1, "t", None, None))
    moved = dataclasses.replace(record, partition=4)
    assert (moved.partition, moved.ref) == (4, 1)
    assert dataclasses.asdict(record) == {
        "ref": 1, "topic": "t", "key": None, "value": None, "headers": (), "partition": -1,
    }  # fmt: skip
    with pytest.raises(TypeError):
        OutgoingRecord(1, "t", None)  # type: ignore[call-arg]


def test_a_delivery_has_its_defaults_and_stays_frozen() -> None:
    ok = Delivery(3, None, 2, 40)
    assert ok.ok
    assert ok == Delivery(ref=3, partition=2, offset=40)
    assert (Delivery(5).error, Delivery(5).partition, Delivery(5).offset) == (None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.offset = 1  # type: ignore[misc]
    assert dataclasses.replace(ok, offset=41).offset == 41
    assert hash(ok) == hash(Delivery(3, None, 2, 40))
